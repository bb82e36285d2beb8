"""The method contract and registry.

Every generative method is a :class:`GenerativeMethod`:

* ``__init__(config=None, *, device="cpu", seed=0, **overrides)`` only stores settings;
* ``fit(seen_train) -> self`` learns from a :class:`~unseen.data.task.SeenTrainData` (nothing
  else: test data cannot reach it);
* ``sample(class_semantics, n_per_class) -> (K * n, d)`` synthesizes features, class-major;
* learned state ends in ``_``; ``save``/``load`` round-trip through ``torch.save`` files that
  load with ``weights_only=True`` (no arbitrary pickle execution).

``fit`` runs an epoch loop owned by this base class, which gives every method checkpoints
written atomically, resume-after-kill (RNG states included, so a resumed run is identical to
an uninterrupted one on the same machine) and per-epoch callbacks for validation.

Seeds as one batched model (``--batch-seeds``, :mod:`unseen.methods.seedbatch`): a method
whose ``supports_seed_batch`` is true writes its training with the seed-axis helpers below
(:meth:`GenerativeMethod.randint`, ``randn``, ``rand``, ``randperm``, ``seed_mean``,
``seed_cross_entropy``), which draw from the global random stream and reduce as before for
one seed, and, when K seeds train as one stacked model, draw each seed's numbers from its own
stream and return one loss per seed. The same code then trains one seed or K at once.

The loop also owns the numeric precision (``precision="bf16"``, :mod:`unseen.methods.precision`):
set-up, epochs and synthesis run under autocast, the networks' outputs come back in fp32, and
methods update their networks with :meth:`GenerativeMethod.optimize` (backward outside
autocast, loss scaling for fp16), so a method's own code is the same for every precision.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError, DataError
from unseen.files import atomic_save, load_torch_file
from unseen.methods.precision import LOW_PRECISION_DTYPES, MixedPrecision, cast_outputs_hook
from unseen.progress import Progress

__all__ = [
    "GenerativeMethod",
    "MethodConfig",
    "atomic_save",
    "available_methods",
    "check_method_values",
    "get_method",
    "load_entry_points",
    "load_plugin",
    "loaded_plugins",
    "make_adam",
    "minibatch_epoch",
    "plugin_errors",
    "register",
]

_REGISTRY: dict[str, type[GenerativeMethod]] = {}
#: entry-point group through which installed packages add methods (see load_entry_points)
ENTRY_POINT_GROUP = "unseen.methods"
_PLUGINS: list[str] = []  # --plugin specs loaded in this process (handed to bench workers)
_PLUGIN_ERRORS: dict[str, str] = {}  # entry points that failed to load: name -> why
_ENTRY_POINTS_LOADED = False


def register(cls: type[GenerativeMethod]) -> type[GenerativeMethod]:
    """Class decorator adding a method to the registry under ``cls.name``.

    Raises:
        ConfigError: when another class already holds the name (a plugin may not replace a
            built-in, or another plugin's method, silently). Registering the same class
            again, e.g. when its module is imported twice, is allowed.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{cls.__qualname__} has no `name`: set name = '...' on the class")
    old = _REGISTRY.get(name)
    if old is not None and old is not cls and _qualname(old) != _qualname(cls):
        raise ConfigError(
            f"method name '{name}' of {_qualname(cls)} is already registered by "
            f"{_qualname(old)}; give the new method another name"
        )
    _REGISTRY[name] = cls
    return cls


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def load_entry_points() -> None:
    """Import the methods installed packages declare in the ``unseen.methods`` entry-point
    group (once per process). An entry point names a module (importing it registers its
    methods with :func:`register`) or a :class:`GenerativeMethod` subclass (registered
    here). One that fails to load is remembered in :func:`plugin_errors`, not raised: a
    broken third-party package must not stop the built-in methods from working."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if isinstance(obj, type) and issubclass(obj, GenerativeMethod):
                register(obj)
        except Exception as exc:  # a plugin's own bug or missing dependency
            _PLUGIN_ERRORS[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"


def load_plugin(spec: str) -> list[str]:
    """Import a plugin given as ``--plugin``: a module name (found on ``sys.path`` or in the
    current folder, like ``python -m``) or a path to a ``.py`` file. Importing it registers
    its methods. Returns the names of the methods it added.

    Raises:
        ConfigError: the module or file is not found, or importing it fails.
    """
    import importlib
    import importlib.util
    import sys

    before = set(_REGISTRY)
    path = Path(spec).expanduser()
    try:
        if spec.endswith(".py") or os.sep in spec or "/" in spec:
            if not path.is_file():
                raise ConfigError(f"--plugin {spec}: file {path} not found")
            path = path.resolve()
            name = f"unseen_plugin_{path.stem}_{abs(hash(str(path))) % 10**8}"
            if name not in sys.modules:
                module_spec = importlib.util.spec_from_file_location(name, path)
                if module_spec is None or module_spec.loader is None:
                    raise ConfigError(f"--plugin {spec}: {path} is not a Python file")
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[name] = module  # dataclasses look their module up while created
                try:
                    module_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
            spec = str(path)
        else:
            cwd = os.getcwd()
            added = cwd not in sys.path
            if added:
                sys.path.insert(0, cwd)
            try:
                importlib.import_module(spec)
            except ModuleNotFoundError as exc:
                if exc.name and spec.split(".")[0] == exc.name.split(".")[0]:
                    raise ConfigError(
                        f"--plugin {spec}: no module named {exc.name!r} on the Python path or "
                        "in the current folder (give a .py file path, or install the package)"
                    ) from None
                raise
            finally:
                if added:
                    sys.path.remove(cwd)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"--plugin {spec}: importing it failed: {type(exc).__name__}: {exc}"
        ) from None
    if spec not in _PLUGINS:
        _PLUGINS.append(spec)
    return sorted(set(_REGISTRY) - before)


def loaded_plugins() -> list[str]:
    """The ``--plugin`` specs loaded in this process (file paths made absolute)."""
    return list(_PLUGINS)


def plugin_errors() -> dict[str, str]:
    """Entry points of the ``unseen.methods`` group that failed to load, and why."""
    load_entry_points()
    return dict(_PLUGIN_ERRORS)


def available_methods() -> dict[str, type[GenerativeMethod]]:
    """Name -> class of every registered method: the built-ins, installed packages' entry
    points (group ``unseen.methods``) and ``--plugin`` modules loaded so far."""
    import unseen.methods  # noqa: F401  (importing the package registers the built-ins)

    load_entry_points()
    return dict(sorted(_REGISTRY.items()))


def get_method(name: str) -> type[GenerativeMethod]:
    methods = available_methods()
    if name not in methods:
        broken = "".join(
            f" (the installed plugin {k} failed to load: {v})" for k, v in _PLUGIN_ERRORS.items()
        )
        raise ConfigError(
            f"unknown method '{name}'; available: {', '.join(methods)}. A method of your own "
            "is loaded with --plugin MODULE (a module or .py file that registers it) or by "
            f"installing its package (entry point group '{ENTRY_POINT_GROUP}'){broken}"
        )
    return methods[name]


@dataclasses.dataclass
class MethodConfig:
    """Fields every method config has; methods subclass it with their own."""

    epochs: int = 30
    batch_size: int = 64


_KIND_WORDS = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a name",
    list: "a list",
    tuple: "a list",
}


def config_from_dict(cls: type, values: dict[str, Any], where: str = "method") -> Any:
    """Build a config dataclass, rejecting unknown keys and converting simple types."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown {where} config key(s) {unknown} for {cls.__name__}; "
            f"valid keys: {', '.join(sorted(names))}"
        )
    out = cls()
    for key, value in values.items():
        default = getattr(out, key)
        try:
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise TypeError
            elif isinstance(default, int) and not isinstance(default, bool):
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise TypeError
                value = int(value)
            elif isinstance(default, float):
                if isinstance(value, bool):
                    raise TypeError
                value = float(value)
            elif isinstance(default, tuple):
                value = tuple(value)
            elif isinstance(default, list):
                value = list(value) if isinstance(value, list | tuple) else [value]
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where} config key '{key}' expects {_KIND_WORDS.get(type(default), 'a value')}"
                f", got {value!r}"
            ) from None
        setattr(out, key, value)
    return out


def _at_least_one(name: str, default: Any) -> bool:
    """Integer fields that count something that must exist: epochs, batch sizes, steps per
    iteration, blocks, widths (a width whose default is 0 means "automatic" and may stay 0)."""
    return (
        name in ("epochs", "batch_size", "n_blocks", "critic_steps")
        or "batch" in name
        or name.endswith(("_per_class", "_per_iter", "_every"))
        or (name.startswith("hidden") and default != 0)
    )


def check_method_values(config: Any, where: str = "method") -> None:
    """Range checks every method config gets, before anything is trained or written.

    Numbers must be finite; learning rates (``lr``, ``*_lr``) positive; integers >= 0, and
    >= 1 for counts that must exist (:func:`_at_least_one`); ``beta1``/``momentum`` in
    [0, 1); ``weight_decay`` >= 0. Options specific to one method (kernels, variants) are
    checked by that method's ``_build`` (see :meth:`GenerativeMethod.check_config`).

    Raises:
        ConfigError: naming the key, the value and the accepted range.
    """
    import math

    defaults = type(config)()
    for f in dataclasses.fields(config):
        name, value = f.name, getattr(config, f.name)
        default = getattr(defaults, name)

        def bad(want: str, name: str = name, value: Any = value) -> ConfigError:
            return ConfigError(f"{where}.{name} must be {want}, got {value!r}")

        if isinstance(value, bool):
            continue
        if isinstance(value, tuple | list) and value and all(isinstance(v, int) for v in value):
            if name.startswith("hidden") and any(v < 1 for v in value):
                raise bad("a list of layer widths >= 1")
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                raise bad("a finite number")
            if (name == "lr" or name.endswith("_lr")) and value <= 0:
                raise bad("a positive learning rate")
            if name in ("beta1", "momentum") and not 0.0 <= value < 1.0:
                raise bad("in [0, 1)")
            if name == "weight_decay" and value < 0:
                raise bad(">= 0")
        elif isinstance(value, int):
            if _at_least_one(name, default) and value < 1:
                raise bad("an integer >= 1")
            if value < 0:
                raise bad("an integer >= 0")


#: plain backward + step (fp32 needs neither autocast nor a scaler: device-independent)
_FP32 = MixedPrecision("fp32")


def minibatch_epoch(
    opt: torch.optim.Optimizer,
    n: int,
    batch_size: int,
    device: torch.device,
    step_losses: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    *,
    min_batch: int = 1,
    clip: float = 0.0,
    optimize: Callable[..., None] | None = None,
    randperm: Callable[[int], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """One epoch of minibatch descent over a random permutation of ``n`` samples.

    ``step_losses(idx)`` returns the loss parts of the batch ``idx``, with the optimised one
    under ``"total"``; batches smaller than ``min_batch`` are skipped (a last batch of one
    sample has no within-batch MMD/prototype term). ``clip > 0`` clips the gradient norm of
    the optimiser's parameters. ``optimize`` applies a loss, as
    ``optimize(loss, opt, clip=clip)``: pass the method's :meth:`GenerativeMethod.optimize`
    so the run's precision applies (default: a plain fp32 backward and step). ``randperm``
    draws the permutation (pass the method's :meth:`GenerativeMethod.randperm`: with stacked
    seeds, one permutation per seed, ``(K, n)``, whose batches ``idx`` are ``(K, b)`` and whose
    losses are per seed). Returns each part's mean over the steps taken (per seed when
    stacked).
    """
    optimize = optimize or _FP32.step
    perm = randperm(n) if randperm is not None else torch.randperm(n, device=device)
    sums: dict[str, Any] = {}
    steps = 0
    for idx in perm.split(batch_size, dim=-1):
        if idx.shape[-1] < min_batch:
            continue
        parts = step_losses(idx)
        optimize(parts["total"], opt, clip=clip)
        steps += 1
        for k, val in parts.items():
            value = val.detach()
            sums[k] = sums.get(k, 0.0) + (float(value) if value.dim() == 0 else value)
    return {k: v / max(steps, 1) for k, v in sums.items()}


EpochCallback = Callable[[int, "GenerativeMethod"], None]


def make_adam(
    params: Any,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Adam:
    """Adam with torch's fused kernel for networks of a million parameters or more, else the
    default (for-each) kernel: the same update rule, one kernel per step instead of a dozen
    element-wise passes. At f-CLSWGAN's generator (13.6M parameters) one update took 6-11 ms
    fused against 61-65 ms (CPU, one thread), and with the GANs' five critic updates per
    generator step the updates were 25-35% of a bf16 step (docs/speed.md). Small networks keep
    the default, whose first step costs no kernel set-up."""
    params = list(params)
    if sum(p.numel() for p in params) < 1_000_000:
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # a torch or device without the fused kernel
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)


class GenerativeMethod(ABC):
    """Base class of generative ZSL methods (see the module docstring for the contract)."""

    name: ClassVar[str]
    config_class: ClassVar[type] = MethodConfig
    #: paper reference shown by ``unseen methods``
    paper: ClassVar[str] = ""
    #: the training is written with the seed-axis helpers (``randint`` ... ``seed_mean``) and
    #: ``_make_optimizers``, so several seeds can train as one stacked model
    supports_seed_batch: ClassVar[bool] = False
    #: networks kept per seed when seeds train as one batched model (a list of the seeds' own
    #: modules instead of one stacked module): those a set-up trains once per seed with code
    #: written for one seed (GSMFlow's contrastive net)
    per_seed_nets: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        config: Any | None = None,
        *,
        device: str | torch.device = "cpu",
        seed: int = 0,
        precision: str = "fp32",
        compile: bool = False,
        **overrides: Any,
    ) -> None:
        """Store the settings (nothing is built before ``fit``).

        Args:
            config: the method's config dataclass (default: its defaults), changed by
                ``overrides`` (config keys).
            device: where the networks train and sample.
            seed: seeds the initialisation and the training's random stream.
            precision: ``fp32``, ``bf16`` or ``fp16`` (CUDA only): the autocast dtype of
                set-up, training and synthesis (see :mod:`unseen.methods.precision`).
            compile: compile every network's forward with ``torch.compile`` after it is
                built (``nn.Module.compile``: parameters, state dicts and checkpoints are
                unchanged). Off by default: measured per method in docs/speed.md.

        Raises:
            ConfigError: an unknown config key or precision, fp16 without CUDA.
        """
        base = config if config is not None else self.config_class()
        if overrides:
            merged = {**dataclasses.asdict(base), **overrides}
            base = config_from_dict(self.config_class, merged)
        self.config = base
        self.device = torch.device(device)
        self.seed = int(seed)
        self.amp = MixedPrecision(precision, self.device)
        self.compile = bool(compile)
        self._output_hooks: list[Any] = []
        self.epoch_ = 0
        self.history_: list[dict[str, float]] = []
        self.dims_: dict[str, int] | None = None
        self.nets_: nn.ModuleDict | None = None
        self.optimizers_: dict[str, torch.optim.Optimizer] = {}
        # seeds trained as one stacked model (unseen.methods.seedbatch); None: one seed
        self.seed_batch_: list[int] | None = None
        self._streams: list[torch.Generator] = []  # each stacked seed's random stream
        self._cpu_states: list[torch.Tensor] = []  # each seed's CPU stream after its build
        self._members: list[GenerativeMethod] = []  # each seed's plain networks

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def _build(self, dims: dict[str, int]) -> None:
        """Create ``self.nets_`` (an ``nn.ModuleDict``) and ``self.optimizers_`` from sizes."""

    def _prepare(self, data: SeenTrainData) -> None:  # noqa: B027  (optional hook)
        """Data-dependent set-up run once before the first epoch (not on resume)."""

    @abstractmethod
    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        """Train one epoch on device-resident ``data``; return mean losses for the log."""

    @abstractmethod
    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        """``(K * n_per_class, d)`` synthetic features, class-major, for ``(K, d_a)`` semantics."""

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers of ``self.nets_`` (needed by ``supports_seed_batch`` methods, whose
        stacked networks get theirs from here)."""
        raise NotImplementedError(f"{self.name} builds its optimizers inside _build")

    # ------------------------------------------------------------------ seed-axis helpers
    def _draw(self, fn: Callable[[torch.Generator | None], torch.Tensor]) -> torch.Tensor:
        """``fn(None)`` (the global stream) for one seed; stacked seeds: each seed's draw
        from its own stream, stacked on a leading seed axis."""
        if not self.seed_batch_:
            return fn(None)
        return torch.stack([fn(g) for g in self._streams])

    def randint(self, high: int, size: tuple[int, ...]) -> torch.Tensor:
        """``torch.randint(high, size)`` on the method's device (per seed when stacked)."""
        return self._draw(lambda g: torch.randint(high, size, device=self.device, generator=g))

    def randn(self, *size: int) -> torch.Tensor:
        """``torch.randn(*size)`` on the method's device (per seed when stacked)."""
        return self._draw(lambda g: torch.randn(*size, device=self.device, generator=g))

    def rand(self, *size: int) -> torch.Tensor:
        """``torch.rand(*size)`` on the method's device (per seed when stacked)."""
        return self._draw(lambda g: torch.rand(*size, device=self.device, generator=g))

    def randperm(self, n: int) -> torch.Tensor:
        """``torch.randperm(n)`` on the method's device (per seed when stacked)."""
        return self._draw(lambda g: torch.randperm(n, device=self.device, generator=g))

    def seed_mean(self, t: torch.Tensor) -> torch.Tensor:
        """``t.mean()``; stacked seeds: the mean of each seed's slice, shape ``(K,)``."""
        if not self.seed_batch_:
            return t.mean()
        return t.reshape(len(self.seed_batch_), -1).mean(1)

    def seed_cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``F.cross_entropy(logits, target)``; stacked seeds: one mean per seed."""
        if not self.seed_batch_:
            return F.cross_entropy(logits, target)
        flat = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none"
        )
        return flat.reshape(len(self.seed_batch_), -1).mean(1)

    def transform_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features as the final classifier sees them; identity by default.

        The runner applies it alike to real seen, synthetic unseen and test features (e.g.
        TL-Coupling's recognition input ``[x, h_hat, f]``, Eq. 15). Called after ``fit``.
        """
        return x

    def flow_map(
        self, x: torch.Tensor, labels: torch.Tensor, semantics: torch.Tensor
    ) -> torch.Tensor | None:
        """The forward map of the method's invertible network on features ``x`` of classes
        ``labels`` (rows of ``semantics``), or ``None`` for methods without one.

        Used by the health check (``unseen diagnose``) to count the input dimensions that
        the transform passes through unchanged; a flow whose blocks leave a dimension
        untouched generates it straight from the prior (IZF's old one-sided blocks did).
        """
        return None

    def health(
        self,
        real: torch.Tensor,
        labels: torch.Tensor,
        classes: torch.Tensor,
        train: SeenTrainData,
    ) -> dict[str, float]:
        """Method-specific health numbers on held-out validation data; none by default.

        Args:
            real: held-out real features of the pseudo-unseen ``classes`` (never in ``fit``'s
                data), on the CPU; ``labels`` their global class ids.
            classes: the pseudo-unseen class ids.
            train: the data the method was fitted on (e.g. for a closed-form baseline).

        Returns:
            name -> value, reported beside the shared numbers of
            :func:`unseen.eval.health.generator_health`; a name ending in ``_warning`` with
            a value of 1 turns into a warning.
        """
        return {}

    def own_classifier(self, classes: torch.Tensor, class_semantics: torch.Tensor) -> Any:
        """A fitted scorer (``classes_``, ``predict_scores``) for methods that classify
        themselves (e.g. IZF-NBC's nearest prototype f^-1([c, 0])). Used with
        ``classifier.kind: method``; the default says the method has none."""
        raise ConfigError(
            f"{self.name} has no classifier of its own; use classifier.kind softmax, "
            "bilinear or prototype"
        )

    def check_config(self, dims: dict[str, int] | None = None) -> None:
        """Raise :class:`ConfigError` for a bad config value before any training.

        Runs :func:`check_method_values`, then, with the data's ``dims``, the method's own
        ``_build`` on PyTorch's ``meta`` device (no memory, no numbers): the options a method
        checks there (kernels, variants, ...) fail now, not after files were written. Any
        other error of that dry build is left to the real one.
        """
        check_method_values(self.config)
        if dims is None:
            return
        probe = type(self)(self.config, device="meta", seed=self.seed)
        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                probe._build(dims)
        except ConfigError:
            raise
        except Exception:  # a build that needs real tensors is checked by the real one
            pass

    # ------------------------------------------------------------------ provided
    @property
    def precision(self) -> str:
        """``fp32``, ``bf16`` or ``fp16``: the precision given at construction."""
        return self.amp.precision

    def optimize(
        self, loss: torch.Tensor, *optimizers: torch.optim.Optimizer, clip: float = 0.0
    ) -> None:
        """Update ``optimizers`` on ``loss``: zero their gradients, back-propagate, clip the
        joint gradient norm when ``clip > 0``, step.

        Every method updates its networks through this call (or through
        :func:`minibatch_epoch` with ``optimize=self.optimize``): in bf16/fp16 it runs the
        backward outside autocast and scales fp16 losses
        (:meth:`~unseen.methods.precision.MixedPrecision.step`); in fp32 it is the plain
        ``zero_grad(); backward(); step()``. A per-seed loss of stacked seeds (shape ``(K,)``)
        is summed: each seed's parameters get exactly their own loss's gradient.
        """
        self.amp.step(loss.sum() if loss.dim() else loss, *optimizers, clip=clip)

    def _attach_precision(self) -> None:
        """After a build: in bf16/fp16, every network of ``nets_`` returns its outputs in
        its parameters' dtype (fp32), so every loss built on them is fp32."""
        for handle in self._output_hooks:
            handle.remove()
        self._output_hooks = []
        if not self.amp.enabled or self.nets_ is None:
            return
        for key, value in self.nets_.items():
            # per-seed networks of stacked seeds: a list of the seeds' own modules
            per_seed = self.seed_batch_ and key in type(self).per_seed_nets
            for net in value if per_seed else [value]:
                dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), None)
                if dtype is not None:
                    hook = cast_outputs_hook(dtype)
                    self._output_hooks.append(net.register_forward_hook(hook))

    def dims_from(self, data: SeenTrainData) -> dict[str, int]:
        return {
            "feature_dim": data.feature_dim,
            "semantic_dim": data.semantic_dim,
            "n_classes": data.n_classes,
            "n_seen": len(data.seen_classes),
        }

    def fit(
        self,
        data: SeenTrainData,
        *,
        epochs: int | None = None,
        callback: EpochCallback | None = None,
        checkpoint: str | Path | None = None,
        progress: bool = False,
        reporter: Progress | None = None,
        stage: str = "",
        label: str | None = None,
    ) -> GenerativeMethod:
        """Train on seen data for ``epochs`` (default ``config.epochs``).

        Args:
            data: the seen training data of a task.
            epochs: total number of epochs to reach (resume continues up to it).
            callback: called as ``callback(epoch, self)`` after every epoch (1-based).
            checkpoint: file to write after every epoch; if it exists, training resumes from
                it (same data and config expected).
            progress: show a progress bar.
            reporter: timestamped progress lines (:class:`unseen.progress.Progress`): one
                per epoch with its time, and lines while the set-up (``_prepare``) runs.
            stage: ``validation`` or ``test``: which time the reporter's estimate learns.
            label: how the lines name this fit (default: method and task name).
        """
        if not isinstance(data, SeenTrainData):
            raise TypeError(
                "fit() takes the seen training data of a task (task.train), "
                f"got {type(data).__name__}"
            )
        total = self.config.epochs if epochs is None else int(epochs)
        dims = self.dims_from(data)
        resumed = False
        if checkpoint is not None and Path(checkpoint).exists():
            self._load_checkpoint(checkpoint, dims)
            resumed = True
        if self.nets_ is None or self.dims_ != dims:
            self.dims_ = dims
            self._build_nets(dims)
            self.nets_.to(self.device)
            self._compile_nets()
            self._attach_precision()
            self.epoch_ = 0
            self.history_ = []
        on_device = self._to_device(data)
        label = label or f"{self.name} {data.name}"
        if not resumed and self.epoch_ == 0:
            busy = (
                reporter.busy(f"{label}: set-up before the first epoch", kind="setup")
                if reporter is not None
                else contextlib.nullcontext()
            )
            with busy, self.amp.autocast():
                self._prepare(on_device)
        bar = tqdm(
            total=total,
            initial=min(self.epoch_, total),
            desc=f"{self.name} {data.name}",
            disable=not progress,
            leave=False,
        )
        while self.epoch_ < total:
            self.nets_.train()
            t0 = time.perf_counter()
            with self.amp.autocast():
                history = _history_values(self._train_epoch(on_device, self.epoch_))
            seconds = time.perf_counter() - t0
            self.epoch_ += 1
            self.history_.append({"epoch": self.epoch_, **history})
            # stacked seeds log one value per seed; the lines show their mean
            losses = {k: sum(v) / len(v) if isinstance(v, list) else v for k, v in history.items()}
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()})
            if reporter is not None:
                reporter.epoch(label, self.epoch_, total, seconds, losses, stage=stage)
            # The callback runs before the checkpoint is written: a kill inside it resumes
            # from the previous epoch and repeats both, so no callback is ever skipped.
            if callback is not None:
                callback(self.epoch_, self)
            if checkpoint is not None:
                atomic_save(self._checkpoint_state(), checkpoint)
        bar.close()
        self.nets_.eval()
        return self

    def synthesize(
        self, classes: torch.Tensor, semantics: torch.Tensor, n_per_class: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Synthetic features and global labels for ``classes`` (rows of ``semantics``).

        Sampling runs in the method's precision (autocast); the features come back in fp32.
        """
        self._check_fitted()
        classes = torch.as_tensor(classes, dtype=torch.long)
        with torch.no_grad(), self.amp.autocast():
            x = self.sample(semantics[classes], n_per_class)
        if x.dtype in LOW_PRECISION_DTYPES:
            x = x.float()
        x = x.cpu()
        y = classes.repeat_interleave(n_per_class)
        return x, y

    def _build_nets(self, dims: dict[str, int]) -> None:
        """``_build`` under the seed's initialisation stream, or the stacked seeds' networks
        (each built under its own seed, then stacked: :func:`unseen.methods.seedbatch`)."""
        if self.seed_batch_:
            from unseen.methods.seedbatch import build_stacked

            build_stacked(self, dims)
        else:
            torch.manual_seed(self.seed)
            self._build(dims)

    def _compile_nets(self) -> None:
        """``torch.compile`` every network in place when asked (see ``compile``)."""
        if self.compile and self.nets_ is not None:
            for net in self.nets_.values():
                net.compile()

    def _check_fitted(self) -> None:
        if self.nets_ is None:
            raise RuntimeError(f"{self.name}: call fit() before sampling")

    def _to_device(self, data: SeenTrainData) -> SeenTrainData:
        dev = self.device
        return dataclasses.replace(
            data,
            features=data.features.to(dev),
            labels=data.labels.to(dev),
            semantics=data.semantics.to(dev),
            seen_classes=data.seen_classes.to(dev),
            unseen_classes=data.unseen_classes.to(dev),
            unlabeled=None if data.unlabeled is None else data.unlabeled.to(dev),
        )

    # ------------------------------------------------------------------ persistence
    def _checkpoint_state(self, optimizers: bool = True) -> dict[str, Any]:
        state = {
            "format": "unseen-method-v1",
            "method": self.name,
            "config": dataclasses.asdict(self.config),
            "seed": self.seed,
            "precision": self.precision,
            "dims": self.dims_,
            "epoch": self.epoch_,
            "history": self.history_,
            "nets": self.nets_.state_dict(),
            "rng_cpu": torch.get_rng_state(),
        }
        if optimizers:  # only resuming training needs them (Adam: twice the weights' size)
            state["optimizers"] = {k: o.state_dict() for k, o in self.optimizers_.items()}
            if self.amp.scaler is not None:
                state["grad_scaler"] = self.amp.state_dict()
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        if self.seed_batch_:
            state["seed_batch"] = list(self.seed_batch_)
            state["streams"] = [g.get_state() for g in self._streams]
            state["cpu_states"] = list(self._cpu_states)
        return state

    def _load_checkpoint(self, path: str | Path, dims: dict[str, int] | None) -> None:
        state = _read_state(path, self.name)
        if dims is not None and "optimizers" not in state:
            raise DataError(
                f"{path} holds a trained model without the optimizer states that resuming "
                "training needs (a model.pt, not a checkpoint.pt); use another checkpoint path"
            )
        if dims is not None and state["dims"] != dims:
            raise DataError(
                f"checkpoint {path} was trained on data of sizes {state['dims']}, "
                f"but the data given now has sizes {dims}; use another output folder"
            )
        # Compare with the saved config completed by the current defaults: a field added
        # after the checkpoint was written (with a default that keeps the old behaviour)
        # does not make it unreadable; any saved value that differs still does.
        saved = dataclasses.asdict(config_from_dict(self.config_class, state["config"]))
        if saved != dataclasses.asdict(self.config):
            raise ConfigError(
                f"checkpoint {path} was written with another {self.name} config; "
                "use another output folder (or --force to start over)"
            )
        # Files from before the precision option were trained in fp32. Resuming in another
        # precision would not be the run it continues; loading for sampling (dims None) is.
        saved_precision = state.get("precision", "fp32")
        if dims is not None and saved_precision != self.precision:
            raise ConfigError(
                f"checkpoint {path} was trained in precision {saved_precision}, this run asks "
                f"for {self.precision}; use another output folder (or --force to start over)"
            )
        if state.get("seed_batch") != self.seed_batch_:
            raise ConfigError(
                f"checkpoint {path} holds seeds {state.get('seed_batch') or [state['seed']]} "
                f"trained {'together' if state.get('seed_batch') else 'alone'}; this fit asks "
                f"for {self.seed_batch_ or [self.seed]}; use another output folder"
            )
        self.dims_ = state["dims"]
        self._build_nets(self.dims_)
        self.nets_.load_state_dict(state["nets"])
        self.nets_.to(self.device)
        self._compile_nets()
        self._attach_precision()
        for k, o in self.optimizers_.items():
            if "optimizers" in state:
                o.load_state_dict(state["optimizers"][k])
        self.amp.load_state_dict(state.get("grad_scaler") or {})
        self.epoch_ = state["epoch"]
        self.history_ = list(state["history"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        for g, stream in zip(self._streams, state.get("streams", []), strict=False):
            g.set_state(stream)
        self._cpu_states = list(state.get("cpu_states", self._cpu_states))

    def save(self, path: str | Path, *, optimizers: bool = False) -> None:
        """Save the trained method (config, sizes, weights, history) atomically.

        Without ``optimizers`` (the default) the file holds no optimizer states: it loads
        for sampling, export and figures but cannot resume training (the checkpoints of
        :meth:`fit` can), and is about a third of a checkpoint's size with Adam.
        """
        self._check_fitted()
        atomic_save(self._checkpoint_state(optimizers=optimizers), path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> GenerativeMethod:
        """Load a method saved by :meth:`save` (safe: ``weights_only=True``)."""
        state = _read_state(path, None)
        klass = get_method(state["method"]) if cls is GenerativeMethod else cls
        config = config_from_dict(klass.config_class, state["config"])
        method = klass(config, device=device, seed=state["seed"])
        method._load_checkpoint(path, None)
        method.nets_.eval()
        return method


def _history_values(losses: dict[str, Any]) -> dict[str, Any]:
    """An epoch's losses as plain numbers for the history: floats, or one float per seed
    (a list) for the per-seed losses of stacked seeds."""
    out: dict[str, Any] = {}
    for key, value in losses.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().float().cpu()
            out[key] = value.tolist() if value.dim() else float(value)
        else:
            out[key] = value
    return out


def _read_state(path: str | Path, expected: str | None) -> dict[str, Any]:
    state = load_torch_file(path, "model file")
    if not isinstance(state, dict) or state.get("format") != "unseen-method-v1":
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        hint = ""
        if got == "unseen-artifact-v1":
            hint = " (it is an artefact of `unseen export`: read it with `unseen predict`)"
        raise DataError(f"model file {path} is not an unseen model (format {got!r}){hint}")
    if expected is not None and state["method"] != expected:
        raise DataError(f"model file {path} holds a '{state['method']}' model, not '{expected}'")
    return state
