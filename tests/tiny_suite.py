"""The smallest valid suite files, shared by the tests that edit them into bad inputs. A module of its own:
tests import it by name (a name no other folder has).

GOOD: CIFAR-10, 2 images per class, one epoch. TOY: the small in-code data set (toy_pockets: 12 training
and 10 test points per class), for the parameters of data sets and the schema's checks; TOY_SYNTHETIC adds
toy_pockets' generator, for the parameters of generators."""

GOOD = """\
name: t
version: 1
primary_metric: accuracy
datasets: [cifar10]
budgets: [2]
val_per_class: 1
test_per_class: 2
model: {name: small_cnn, params: {width: 4}}
train: {epochs: 1}
strategies: [real_only]
metrics: [accuracy]
seeds: [0]
"""

TOY = """\
name: toy
version: 1
primary_metric: accuracy
datasets: [{name: toy_pockets, params: {train_per_class: 12, test_per_class: 10}}]
budgets: [3]
val_per_class: 2
model: {name: mlp, params: {hidden: [8]}}
train: {epochs: 1}
strategies: [real_only]
metrics: [accuracy]
seeds: [0]
"""
TOY_SYNTHETIC = TOY.replace("strategies:", "synthetic: {generator: {name: toy_pockets_oracle, params: {}}, budget_per_class: 2}\n"
                            "strategies:")
