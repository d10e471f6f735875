"""Every config file composes and validates; bad values are refused with a precise message."""

from __future__ import annotations

from importlib import resources

import pytest
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from annkit.config import portable, validate
from annkit.errors import AnnkitError

CONFIG_ROOT = resources.files("annkit.configs")
GROUPS = sorted(p.name for p in CONFIG_ROOT.iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__"))


def options(group: str) -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in CONFIG_ROOT.joinpath(group).iterdir() if p.name.endswith(".yaml"))


def train_cfg(*overrides: str):
    with initialize_config_module(config_module="annkit.configs", version_base=None):
        return compose(config_name="train", overrides=list(overrides))


def test_the_groups_the_issue_names_exist():
    assert GROUPS == [
        "dataset",
        "experiment",
        "hparams_search",
        "logger",
        "loss",
        "lr_find",
        "model",
        "optimizer",
        "recipe",
        "scheduler",
        "trainer",
    ]
    assert {"mlp", "logistic"} <= set(options("model"))
    assert {"fashion_mnist", "mnist", "xor", "logic", "playground", "csv"} <= set(options("dataset"))
    assert {"ce", "bce", "mse"} <= set(options("loss"))
    assert {
        "xor_logistic",
        "xor_tanh",
        "spiral_activations",
        "skewed_classes",
        "crowd_weights",
        "depth_vs_width",
    } <= set(options("experiment"))
    assert {"sgd", "adam", "adamw", "rmsprop"} <= set(options("optimizer"))
    assert {"none", "onecycle", "cosine", "step"} <= set(options("scheduler"))


# options that need a value the user must give (no file is read by validate)
REQUIRED = {("dataset", "csv"): ["dataset.path=table.csv", "dataset.target=label"]}


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS if g not in ("experiment", "hparams_search", "recipe") for o in options(g)]
)
def test_every_config_file_composes_and_validates(group, option):
    cfg = train_cfg(f"{group}={option}", *REQUIRED.get((group, option), []))
    resolved = validate(cfg)
    expected = {group: OmegaConf.to_container(cfg[group], resolve=True)}
    portable(expected)  # validate makes every path absolute
    assert resolved[group] == expected[group]


@pytest.mark.parametrize("name", options("recipe"))
def test_each_recipe_comes_with_its_dataset_and_the_command_line_wins(name):
    """recipe/<dataset>.yaml sets the epochs and batch that suit that dataset; overrides and experiments win."""
    recipe = OmegaConf.load(str(CONFIG_ROOT / "recipe" / f"{name}.yaml"))
    resolved = validate(train_cfg(f"dataset={name}", *REQUIRED.get(("dataset", name), [])))
    assert (
        resolved["trainer"]["epochs"] == recipe.trainer.epochs
        and resolved["trainer"]["batch_size"] == recipe.trainer.batch_size
    )
    mine = validate(train_cfg(f"dataset={name}", "trainer.epochs=5", *REQUIRED.get(("dataset", name), [])))
    assert mine["trainer"]["epochs"] == 5 and mine["trainer"]["batch_size"] == recipe.trainer.batch_size
    assert validate(train_cfg())["trainer"]["epochs"] == 30  # the default recipe (fashion_mnist) has none


def test_experiments_keep_their_own_settings_over_the_recipe():
    for experiment, epochs, batch in (("xor_tanh", 50, 16), ("xor_logistic", 50, 16), ("spiral_activations", 200, 10)):
        t = validate(train_cfg(f"experiment={experiment}"))["trainer"]
        assert (t["epochs"], t["batch_size"]) == (epochs, batch), experiment


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_composes_validates_and_names_its_sweep(name):
    """An experiment overrides groups and keys at the top level (# @package _global_)."""
    with initialize_config_module(config_module="annkit.configs", version_base=None):
        cfg = compose(config_name="train", overrides=[f"experiment={name}"], return_hydra_config=True)
    resolved = validate(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
    assert resolved["model"]["name"] != "mlp" or resolved["dataset"]["name"] != "fashion_mnist"  # it changed something
    parser = OverridesParser.create()
    for key, values in (cfg.hydra.sweeper.params or {}).items():  # each swept key exists, and each value validates
        sweep = parser.parse_override(f"{key}={values}")
        assert sweep.is_sweep_override()
        for value in sweep.sweep_string_iterator():
            validate(train_cfg(f"experiment={name}", f"{key}={value}"))


def test_defaults_are_the_documented_recipe():
    cfg = train_cfg()
    assert cfg.model.name == "mlp" and cfg.dataset.name == "fashion_mnist" and cfg.loss.name == "ce"
    assert cfg.scheduler.max_lr == cfg.optimizer.lr  # one-cycle peaks at optimizer.lr


@pytest.mark.parametrize(
    "override,needle",
    [
        ("model.activation=relux", 'Unknown activation "relux". Did you mean "relu"?'),
        ("trainer.epochs=-1", "trainer.epochs=-1 is not valid: expected a whole number ≥ 0"),
        ("trainer.epochs=abc", "trainer.epochs='abc' is not valid"),
        ("trainer.batch_size=2.5", "trainer.batch_size=2.5 is not valid"),
        ("model.dropout=1.0", "model.dropout=1.0 is not valid: expected a number in [0.0, 1.0)"),
        ("model.hidden=[512,-1]", "model.hidden=[512, -1] is not valid"),
        ("model.norm=group", "model.norm='group' is not valid: expected one of: none, batch, layer"),
        ("trainer.device=gpu", "trainer.device='gpu' is not valid: expected one of: auto, cpu, cuda, cuda:N, mps"),
        (
            "trainer.best_metric=val/f1",
            "expected one of: auto, val/loss, val/accuracy, val/balanced_accuracy, val/macro_f1",
        ),
        ("loss.class_weights=[1,-1]", "loss.class_weights=[1, -1] is not valid: expected null, balanced"),
        ("loss.class_weights=[0,0]", "(not all 0)"),
        ("loss.class_weights=equal", "loss.class_weights='equal' is not valid"),
        ("loss.reduction=sum", "loss.reduction='sum' is not valid: expected one of: mean, weighted_mean"),
        ("loss.l2=-0.1", "loss.l2=-0.1 is not valid: expected a number ≥ 0.0"),
        ("loss=bce loss.pos_weight=-2", "loss.pos_weight=-2 is not valid"),
        ("loss=mse +loss.smoothing=0.1", "Unknown config key loss.smoothing"),
        (
            "model.output_activation=relu",
            "model.output_activation='relu' is not valid: expected one of: auto, identity, sigmoid, softmax, tanh",
        ),
        ("model.activation={name:softplus,betta:2}", "softplus does not take the argument(s) betta"),
        ("model.activation={name:softplus,betta:2}", 'Did you mean "beta"?'),
        ("model.activation={name:prelu,num_parameters:3} model.hidden=[4]", "torch refuses it on a layer of width 4"),
        (
            "dataset.class_fraction=[1,2]",
            "dataset.class_fraction=[1, 2] is not valid: expected null, or one share in [0, 1] per class",
        ),
        ("dataset.label_noise.fraction=1.5", "dataset.label_noise.fraction=1.5 is not valid"),
        ("dataset.label_noise.weight=-1", "dataset.label_noise.weight=-1 is not valid: expected a number ≥ 0.0"),
        (
            "dataset=playground dataset.kind=plane",
            "dataset.kind=plane is a regression set of the playground, but dataset.task=classification",
        ),
        (
            "dataset=playground dataset.kind=moons",
            "dataset.kind='moons' is not valid: expected one of: circle, xor, gauss, spiral, plane",
        ),
        (
            "dataset=playground dataset.features=[x1,x3]",
            "expected a list of features from: x1, x2, x1_sq, x2_sq, x1_x2, sin_x1, sin_x2",
        ),
        ("dataset=playground dataset.noise=0.9", "dataset.noise=0.9 is not valid: expected a number in [0.0, 0.5]"),
        (
            "dataset=logic dataset.gate=xnor",
            "dataset.gate='xnor' is not valid: expected one of: and, or, nand, nor, xor",
        ),
        ("dataset=csv dataset.path=t.csv", "dataset=csv needs dataset.target: the column to predict"),
        (
            "dataset=csv dataset.target=y dataset.val_size=1.5",
            "dataset.val_size=1.5 is not valid: expected a number of rows",
        ),
        ("dataset.name=cifar", 'Unknown dataset "cifar"'),
        ("dataset.name=xor", "pick its file with dataset=xor, not dataset.name=…"),  # the name only labels the dataset
        ("+trainer.epoch=3", 'Unknown config key trainer.epoch. Did you mean "epochs"?'),
        ("+model.widths=[3]", "Unknown config key model.widths"),
        ("+optimizer.momentum=0.9", "optimizer.momentum is not an argument of torch.optim.adamw.AdamW"),
        ("optimizer.lr=-1", "optimizer.lr=-1 is not valid"),
        (
            "optimizer._target_=torch.optim.Nope",
            "optimizer._target_='torch.optim.Nope' is not a torch.optim.optimizer.Optimizer class",
        ),
        ("scheduler.interval=batch", "scheduler.interval='batch' is not valid"),
        ("+scheduler.total_steps=10", "scheduler.total_steps is not an argument"),
        ("dataset.augment.shift=30", "dataset.augment.shift=30 is not valid: expected a whole number from 0 to 8"),
        ("loss.label_smoothing=1.5", "loss.label_smoothing=1.5 is not valid"),
        ("trainer.seed=99999999999999999999", "expected a whole number from 0 to 4294967294"),
        ("trainer.batch_size=1", "model.norm=batch needs batches of at least 2 samples"),
        # values torch only checks when it runs them: refused by the dry run, before any data
        (
            "optimizer=sgd optimizer.nesterov=true optimizer.momentum=0",
            "refused by torch: ValueError: Nesterov momentum requires a momentum",
        ),
        ("optimizer.betas=[2,3]", "refused by torch: ValueError: Invalid beta parameter at index 0: 2"),
        (
            "scheduler.pct_start=1.5",
            "scheduler settings are refused by torch: ValueError: Expected float between 0 and 1 pct_start",
        ),
        ("scheduler=step scheduler.step_size=0", "scheduler settings are refused by torch: ZeroDivisionError"),
        (
            "model.activation={name:leaky_relu,negative_slope:abc}",
            "model.activation={'name': 'leaky_relu', 'negative_slope': 'abc'}: torch refuses it",
        ),
    ],
)
def test_bad_values_are_refused_with_the_key_and_what_is_valid(override, needle):
    with pytest.raises(AnnkitError) as err:
        validate(train_cfg(*override.split(" ")))
    assert needle in str(err.value)


def test_unknown_activation_message_lists_every_valid_name():
    with pytest.raises(AnnkitError) as err:
        validate(train_cfg("model.activation=relux"))
    assert (
        "Valid names: elu, gelu, heaviside, identity, leaky_relu, linear, prelu, relu, sigmoid, sign, silu, softplus, "
        "step, swish, tanh."
    ) in str(err.value)


def test_activation_with_parameters_validates():
    cfg = train_cfg("model.activation={name: leaky_relu, negative_slope: 0.1}")
    assert validate(cfg)["model"]["activation"] == {"name": "leaky_relu", "negative_slope": 0.1}
