"""The smallest valid suite file (CIFAR-10, 2 images per class, one epoch), shared by the CLI tests that
edit it into bad inputs. A module of its own: tests import it by name (a name no other folder has)."""

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
