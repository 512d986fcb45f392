"""The training config: one dataclass whose fields are the YAML keys and, through their metadata, the CLI flags.

Each field carries its help text, flag group and any argparse detail in ``metadata``, so ``edgeface train`` and
``edgeface eval`` build their flags from :class:`TrainConfig` and a new setting needs no second list. Kept free of
torch so ``edgeface --help`` stays instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeface.checks import check_number

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

# Flag groups in ``edgeface train --help`` order; "data" is also what ``edgeface eval`` takes.
GROUPS = ("model", "data", "attributes", "optimisation", "run")
GROUP_TITLES = {"attributes": "attributes (dmmcnn): switch parts of the method off to measure them, name the "
                              "threshold objective"}


def setting(default: Any = dataclasses.MISSING, *, help: str, group: str, flag: str | None = None,
            default_factory: Any = dataclasses.MISSING, **argparse_options: Any) -> Any:
    """A config field that is also a CLI flag (``--field-name`` unless ``flag`` says otherwise)."""
    metadata = {"help": help, "group": group, "flag": flag, "argparse": argparse_options}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Every training setting; defaults are the DLDL-v2 paper's recipe (YAML configs and CLI flags override)."""

    model: str = setting("thinagenet", group="model",
                         help="model zoo name (edgeface models), e.g. thinagenet, tinyagenet")
    task: str = setting("age", group="model", choices=["age", "attractiveness", "attributes"],
                        help="what to learn (default age; attributes for an attribute model such as dmmcnn)")
    data: str | None = setting(None, group="data",
                               help="data set path (folder or list file); train: omit for the built-in SYNTHETIC set")
    format: str = setting("utkface", group="data",
                          help="utkface | csv | morph | fgnet | scut | celeba | attributes-csv (default utkface)")
    image_col: str = setting("image", group="data", help="CSV column with image paths (relative to the CSV; "
                                                         "default image)")
    label_col: str = setting("label", group="data", help="CSV column with the label (default label)")
    std_col: str | None = setting(None, group="data", help="CSV column with the label's std, e.g. the raters' "
                                                           "(default label_std if present)")
    image_root: str | None = setting(None, group="data", help="folder the MORPH / SCUT image names are relative to")
    label_range: list[float] | None = setting(None, group="model", nargs=2, metavar=("LOW", "HIGH"),
                                              help="label-space ends (attractiveness default 1 7; SCUT-FBP5500 "
                                                   "uses 1 5)")
    sigma: float | None = setting(None, group="model", help="label-distribution std where the data gives none")
    lam: float = setting(1.0, group="model", flag="--lambda", help="weight of the L1 expectation loss (default 1)")
    task_options: dict = setting(default_factory=dict, group="attributes", flag="--task-option",
                                 help="task-specific setting KEY=VALUE, e.g. landmark_weight=0.5 (repeatable)")
    input_size: int = setting(224, group="optimisation", help="square input side in pixels (paper 224)")
    epochs: int = setting(60, group="optimisation", help="epochs (paper 60)")
    batch_size: int = setting(128, group="optimisation", help="batch size per process (paper 128)")
    lr: float = setting(1e-3, group="optimisation", help="Adam learning rate (paper 1e-3)")
    lr_step: int = setting(30, group="optimisation", help="epochs between x lr-gamma decays (paper 30)")
    lr_gamma: float = setting(0.1, group="optimisation", help="decay factor (paper 0.1)")
    schedule: str = setting("step", group="optimisation", choices=["step", "cosine"],
                            help="learning-rate schedule: step (x lr-gamma every lr-step epochs, the paper's) or "
                                 "cosine (to 0 at the last epoch)")
    warmup_epochs: int = setting(0, group="optimisation",
                                 help="linear warm-up epochs from lr/10 before the cosine schedule")
    init: str | None = setting(None, group="optimisation",
                               help="warm start from an edgeface checkpoint or shipped weights by name: layers "
                                    "whose name and shape match are copied, the rest (e.g. a head for another "
                                    "label space) re-initialised and listed")
    channels_last: bool = setting(False, group="optimisation",
                                  help="NHWC activations while training (faster convolutions on some CPUs)")
    weight_decay: float = setting(0.0, group="optimisation", help="Adam weight decay (default 0)")
    val_fraction: float = setting(0.2, group="data", help="validation share of a seeded random split (default 0.2)")
    protocol: str = setting("auto", group="data", choices=["auto", "lopo"],
                            help="auto (own split, else seeded) or lopo (FG-NET)")
    folds: int = setting(0, group="data", help="k-fold split instead (grouped by person where ids exist)")
    fold: int = setting(0, group="data", help="which fold (or person, with --protocol lopo) is validation")
    seed: int = setting(0, group="data", help="seed for split, sampling, augmentation and init (default 0)")
    out: str = setting("runs/train", group="run", help="output folder (default runs/train)")
    resume: bool = setting(False, group="run", help="continue the run in --out from last.pt")
    device: str = setting("auto", group="run", help="auto | cpu | cuda | cuda:N (default auto)")
    amp: bool = setting(True, group="run", help="no mixed precision on CUDA")
    aligned: bool = setting(False, group="data",
                            help="images are already aligned chips (UTKFace, CelebA aligned): skip detection")
    detector: str | None = setting(None, group="data", help="YuNet face detector ONNX that aligns unaligned images "
                                                                "(default: the YuNet shipped with edgeface)")
    strict: bool = setting(False, group="data", help="fail on the first bad item instead of skipping")
    max_images: int = setting(0, group="data", help="use at most this many images (seeded random subset)")
    cache_dir: str | None = setting(None, group="data",
                                    help="cache root, aligned crops go to its faces/ (default $EDGEFACE_CACHE, else "
                                         "$XDG_CACHE_HOME/edgeface, else ~/.cache/edgeface)")
    workers: int = setting(2, group="run", help="DataLoader worker processes (default 2)")
    threads: int = setting(2, group="run", help="torch CPU threads (default 2)")
    synthetic_size: int = setting(2000, group="optimisation", help="images in the built-in SYNTHETIC set")
    val_flip: bool = setting(True, group="run", help="validate without test-time flip averaging")
    augment: dict = setting(default_factory=dict, group="optimisation",
                            help="augmentation setting KEY=VALUE over the recipe's, e.g. rotation=0 or "
                                 "scale=[1,1] (repeatable)")
    progress: bool = setting(True, group="run", help="no progress bars (they are drawn only when stderr is a "
                                                           "terminal anyway) and no per-epoch lines")

    def __post_init__(self) -> None:
        """Numbers in range before anything runs: a zero ``lr_step`` or an infinite label range would otherwise
        fail only after an epoch of work (or silently train on NaN)."""
        for name, bounds in NUMBER_BOUNDS.items():
            value = getattr(self, name)
            if value is not None:
                check_number(value, flag_name(FIELDS[name]), **bounds)
        if self.label_range is not None:
            if not isinstance(self.label_range, list | tuple) or len(self.label_range) != 2:
                raise ValueError(f"--label-range must be two numbers LOW HIGH, got {self.label_range!r}")
            low, high = (check_number(v, "--label-range") for v in self.label_range)
            if not low < high:
                raise ValueError(f"--label-range needs LOW < HIGH, got {low:g} {high:g}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_COUNT = {"minimum": 1, "integer": True}
_INDEX = {"minimum": 0, "integer": True}
NUMBER_BOUNDS: dict[str, dict] = {  # what each numeric setting accepts (all must be finite)
    "epochs": _COUNT, "batch_size": _COUNT, "lr_step": _COUNT, "input_size": _COUNT, "threads": _COUNT,
    "synthetic_size": _COUNT, "warmup_epochs": _INDEX, "folds": _INDEX, "fold": _INDEX, "seed": _INDEX,
    "max_images": _INDEX, "workers": _INDEX, "lr": {"above": 0}, "lr_gamma": {"above": 0},
    "weight_decay": {"minimum": 0}, "lam": {"minimum": 0}, "sigma": {"above": 0},
    "val_fraction": {"above": 0, "below": 1},
}


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults <- YAML file (a path, or a name in train/configs/) <- non-None overrides (dict settings such as
    ``augment`` merge key by key, so one flag changes one option of the recipe)."""
    import yaml

    values: dict = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            file = CONFIG_DIR / f"{path}.yaml"
        if not file.is_file():
            names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
            raise FileNotFoundError(f"config not found: {path} (built-in: {names})")
        loaded = yaml.safe_load(file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config {file} must be a mapping")
        values.update(loaded)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict):
            values[key] = {**(values.get(key) or {}), **value}
        elif value is not None:
            values[key] = value
    return TrainConfig.from_dict(values)


def flag_name(f: dataclasses.Field) -> str:
    """The CLI flag of a config field: ``--no-x`` for a setting that is on by default."""
    if f.metadata["flag"]:
        return f.metadata["flag"]
    name = f.name.replace("_", "-")
    return f"--no-{name}" if f.default is True else f"--{name}"


def _key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as YAML (numbers, booleans, lists)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def add_config_arguments(parser: argparse.ArgumentParser, groups: tuple[str, ...] = GROUPS) -> dict[str, Any]:
    """One flag per TrainConfig field in ``groups``, all defaulting to None (unset: the recipe's value stays).
    Returns the argument groups by name, for flags that are not config fields."""
    hints = typing.get_type_hints(TrainConfig)
    fields = dataclasses.fields(TrainConfig)
    containers: dict[str, Any] = {}
    for group in groups:
        title = GROUP_TITLES.get(group, group)
        target = containers[group] = parser if group == "model" else parser.add_argument_group(title)
        for f in (f for f in fields if f.metadata["group"] == group):
            kind = _unwrap_optional(hints[f.name])
            options: dict[str, Any] = {"dest": f.name, "default": None, "help": f.metadata["help"]}
            if kind is bool:
                options["action"] = "store_false" if f.default is True else "store_true"
            elif kind is dict:
                options.update(type=_key_value, action="append", metavar="KEY=VALUE")
            elif typing.get_origin(kind) is list:
                options.update(type=typing.get_args(kind)[0], nargs="+")
            else:
                options["type"] = kind
            options.update(f.metadata["argparse"])
            target.add_argument(flag_name(f), **options)
    return containers


def config_overrides(args: argparse.Namespace) -> dict:
    """The TrainConfig values given on the command line (None where a flag was not given; KEY=VALUE pairs as a
    dict)."""
    hints = typing.get_type_hints(TrainConfig)
    values = {}
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name, None)
        values[f.name] = dict(value) if value is not None and _unwrap_optional(hints[f.name]) is dict else value
    return values


def _unwrap_optional(kind: Any) -> Any:
    """``X | None`` -> ``X``."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0]
    return kind
