"""``annkit train``: validate → world / resume → build → (find the lr) → scheduler → hooks → fit → test → record.

:func:`train` is the recipe, read top to bottom; each step is a call into the module that owns it: the wiring
(:mod:`annkit.tasks.build`), the learning rate (:mod:`annkit.tasks.learning_rate`), the header
(:mod:`annkit.tasks.header`), the record (:mod:`annkit.tasks.metrics_record`), the loop (:mod:`annkit.loop`).
The task layer reads the config; everything below it takes plain arguments. :func:`run` is the Hydra entry point
(:mod:`annkit.cli` builds one app per subcommand), so ``-m`` sweeps, ``--cfg job``, ``--help``, ``--config-dir``
and shell completion work as in any Hydra app.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.text import Text

from annkit import distributed
from annkit.advice import LossTrend, diverged_text, divergence_advice, go_on_note, perceptron_outcome, result_warnings
from annkit.checkpoint import Checkpoint, Checkpointer, peek
from annkit.commands import command, override, shown
from annkit.config import flatten, path_values, validate
from annkit.dashboard import hparam_values, model_markdown
from annkit.distributed import World, world_from_env
from annkit.errors import Interrupted, TrainingDiverged, print_error, user_errors
from annkit.finetune import report_markdown
from annkit.fit_state import FitResult, FitState
from annkit.inside import health_table
from annkit.loop import Hook, fit
from annkit.metrics import confusion_markdown
from annkit.models import count_params, summarize
from annkit.overrides import key_of, rewritten
from annkit.records import write_record
from annkit.resume import open_resume, resumed_config
from annkit.resume import prepare_argv as resume_argv
from annkit.rundir import protect
from annkit.runtime import StopSignals, parallel_jobs, rng_state
from annkit.sweeps import objective
from annkit.tasks import header, learning_rate
from annkit.tasks.build import Built, build, check_distributed, policy, restore, training_module
from annkit.tasks.learning_rate import LearningRate, build_scheduler, schedule_of
from annkit.tasks.metrics_record import Timing, checkpoint_meta, final_scalars, metrics_record
from annkit.tasks.pictures import Pictures, make_pictures, picture_hooks
from annkit.tracking import ConsoleReporter, TensorBoardLogger
from annkit.truth import truth_parts


def train(cfg: DictConfig, run_dir: Path, console: Console | None = None, overrides: list[str] | None = None,
          jobs: int = 1) -> dict[str, Any]:  # fmt: skip
    """Train the configured model; write checkpoints, TensorBoard events and metrics.json into ``run_dir``.

    With ``optimizer.lr=auto`` the LR range test runs first on the built model, which it leaves untouched, and
    training uses its suggestion. With ``resume`` it goes on from a checkpoint of this run dir, exactly where that
    run stopped. ``overrides`` (the command line's) are kept in the checkpoints, for resume; ``jobs``: how many
    runs share the machine (a joblib sweep), which sets torch's threads under ``trainer.threads=auto``."""
    timing = Timing()
    asked = validate(cfg)  # every key checked before any data is read
    overrides = rewritten([o for o in overrides or [] if key_of(o) != "resume"], path_values(asked))  # absolute paths
    world = world_from_env()
    if world is not None:
        check_distributed(asked, world)
    main = world is None or world.main  # only rank 0 prints and writes
    console = (console or Console()) if main else Console(file=io.StringIO(), force_jupyter=False)
    asked, ckpt = open_run(asked, run_dir, main)
    built = build(asked, load_init=ckpt is None, jobs=jobs, world=world)
    tensorboard = (
        TensorBoardLogger(run_dir / "tb", purge_step=ckpt.meta["step"] + 1 if ckpt else None) if main else None
    )
    try:
        lr = choose_lr(asked, built, ckpt, console, run_dir, tensorboard)
        cfg_used = lr.config(asked)  # the config this run trains with: the chosen lr filled in
        scheduler, interval = build_scheduler(cfg_used["scheduler"], built.network.optimizer,
                                              epochs=asked["trainer"]["epochs"], steps_per_epoch=len(built.problem.train))  # fmt: skip
        reporter = ConsoleReporter(console, task=built.problem.data.task, penalty=built.network.penalty is not None,
                                   print_every=print_every(asked))  # fmt: skip
        schedule = header.schedule_text(
            cfg_used, scheduler, interval, asked["trainer"]["epochs"] * len(built.problem.train)
        )
        warnings = announce(asked, built, run_dir, lr, schedule, world, ckpt, reporter, tensorboard, cfg_used)
        meta = checkpoint_meta(cfg_used, overrides, built, lr, ckpt)
        state = FitState()
        if ckpt is not None:  # the random streams last: nothing may draw after this
            state, note = restore(built, scheduler, ckpt)
            timing.before = ckpt.state.get("elapsed_s", 0.0)
            if note:
                warnings.append(note)
                reporter.warn(note)
        checkpointer = Checkpointer(run_dir / "checkpoints", built.network.model, meta,
                                    capture_state(built, scheduler, state, timing), state,
                                    keep_last=asked["trainer"]["checkpoint"]["keep_last"])  # fmt: skip
        trend = LossTrend()  # the loss by lr, for the advice after a divergence
        pictures = (
            make_pictures(asked, built, tensorboard, reporter.warn, warnings) if tensorboard is not None else None
        )
        hooks = training_hooks(built, world, checkpointer, tensorboard, pictures, reporter, trend)
        module, collective = training_module(built.network.model, built.machine.device, ddp=world is not None,
                                             compile=asked["trainer"]["compile"])  # fmt: skip
        fit_policy = policy(asked, built.problem.data.task)
        # Ctrl-C under torchrun: torchrun stops every rank (resume from the last epoch's checkpoint, in one process)
        with StopSignals() if world is None else contextlib.nullcontext() as stop:
            result = fit(built.network.model, built.network.optimizer, built.problem.train, built.problem.val,
                         built.step, fit_policy, schedule=schedule_of(scheduler, interval), hooks=hooks, state=state,
                         should_stop=stop, collective=collective, train_module=module)  # fmt: skip
            stop_if_it_did_not_finish(result, state, run_dir, asked, trend, overrides, checkpointer, stop, built)
        test = test_best(built, result, lr, warnings, reporter)
        metrics = metrics_record(asked, built, result, test, meta, timing, warnings, world, fit_policy.best_metric)
        if main:
            write_results(cfg_used, overrides, built, result, metrics, run_dir, tensorboard, pictures, reporter)
    finally:
        if tensorboard is not None:
            tensorboard.close()
    if world is not None:  # after success only: a failed rank exits, and torchrun stops the others
        distributed.finish()
    return metrics


def open_run(cfg: dict[str, Any], run_dir: Path, main: bool) -> tuple[dict[str, Any], Checkpoint | None]:
    """``resume=``: the checkpoint to go on from and the config it trains with; else a run dir that holds no run."""
    if cfg["resume"] is not None:
        ckpt = open_resume(cfg["resume"], run_dir)
        return resumed_config(cfg, ckpt), ckpt
    if main:  # the cli checked before Hydra made the folder; this guards the API too
        protect(
            run_dir, task="train", sweep=False, overwrite=cfg["trainer"]["overwrite"], overwrite_key="trainer.overwrite"
        )
    return cfg, None


def choose_lr(cfg: dict[str, Any], built: Built, ckpt: Checkpoint | None, console: Console, run_dir: Path,
              tensorboard: TensorBoardLogger | None) -> LearningRate:  # fmt: skip
    """The lr, decided once: a resumed run's own, the given number, or (optimizer.lr=auto) the LR search's
    suggestion; the optimizer is set to it, and TensorBoard's config text records what was asked and used."""
    if ckpt is not None:
        lr = learning_rate.resumed(cfg, ckpt.meta.get("lr"))
    elif cfg["optimizer"]["lr"] == "auto":
        lr = learning_rate.chosen(cfg, learning_rate.find(cfg, built, console, run_dir, tensorboard))
    else:
        lr = learning_rate.given(cfg)
    if lr.found is not None:  # a given (or resumed) lr is the one the optimizer was built (or restored) with
        lr.apply(built.network.optimizer)
    if tensorboard is not None:
        tensorboard.config(OmegaConf.to_yaml(OmegaConf.create({**cfg, "lr": lr.record()})))
    return lr


def print_every(cfg: dict[str, Any]) -> int:
    every = cfg["trainer"]["print_every"]
    return every if every != "auto" else max(1, math.ceil(cfg["trainer"]["epochs"] / 50))


def announce(cfg: dict[str, Any], built: Built, run_dir: Path, lr: LearningRate, schedule: str, world: World | None,
             ckpt: Checkpoint | None, reporter: ConsoleReporter, tensorboard: TensorBoardLogger | None,
             cfg_used: dict[str, Any]) -> list[str]:  # fmt: skip
    """Print the header, the init_from table and the setup's warnings; describe a new run in TensorBoard. Returns
    the warnings (metrics.json keeps them)."""
    model, data = built.network.model, built.problem.data
    params, trainable = count_params(model)
    where = None
    if ckpt is not None:
        meta, steps = ckpt.meta, len(built.problem.train)
        at = (f"epoch {meta['epoch'] + (1 if meta['batch'] else 0)}, batch {meta['batch']} of {steps}" if meta["batch"]
              else f"the end of epoch {meta['epoch']}")  # fmt: skip
        where = f"from {shown(ckpt.path)} at {at} (step {meta['step']})"
    layers = summarize(model, data.input_shape)
    reporter.header(header.train_facts(cfg_used, built, run_dir, lr, schedule, world, where), layers, params)
    if built.network.init is not None:
        reporter.print(header.init_table(built.network.init, model.state_dict()))
    warnings = header.setup_warnings(cfg, built, lr)
    for note in warnings:
        reporter.warn(note)
    if ckpt is None and tensorboard is not None:
        tensorboard.describe(data.task, built.network.penalty is not None, model_markdown(layers, params, trainable))
        tensorboard.scalar("params/trainable", trainable, 0)
        tensorboard.scalar("params/frozen", params - trainable, 0)
        if built.network.init is not None:
            tensorboard.text("init_from", report_markdown(built.network.init, model.state_dict()), 0)
    return warnings


def capture_state(built: Built, scheduler: Any, state: FitState, timing: Timing) -> Any:
    """() → the training state a checkpoint stores beside the weights (the loop, optimizer, scheduler, streams)."""
    optimizer, rng = built.network.optimizer, built.machine.rng

    def capture() -> dict[str, Any]:
        return {"fit": state.tree(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rng_state([rng]), "elapsed_s": timing.elapsed()}  # fmt: skip

    return capture


def training_hooks(built: Built, world: World | None, checkpointer: Checkpointer, tensorboard: Any,
                   pictures: Pictures | None, reporter: ConsoleReporter, trend: LossTrend) -> list[Hook]:  # fmt: skip
    """Saved first, announced last: a row on screen means its checkpoint is on disk; the health warnings follow the
    row. Other ranks: the trend only."""
    before, after = picture_hooks(pictures)
    hooks: list[Hook] = (
        [checkpointer, tensorboard, *before, reporter, *after, trend] if tensorboard is not None else [trend]
    )
    threads = built.machine.threads
    if threads is not None and threads.governed and world is None:
        threads.notify = lambda text: reporter.print(Text(text, style="dim"))
        hooks.append(threads)
    return hooks


def stop_if_it_did_not_finish(result: FitResult, state: FitState, run_dir: Path, cfg: dict[str, Any], trend: LossTrend,
                              overrides: list[str], checkpointer: Checkpointer, stop: Any, built: Built) -> None:  # fmt: skip
    """A diverged run raises with advice; an interrupted one (still inside StopSignals: a second signal during the
    save stops at once, cleanly) saves its state and raises with the command that goes on."""
    trainer, steps = cfg["trainer"], len(built.problem.train)
    if result.diverged is not None:
        raise TrainingDiverged(
            diverged_message(result.diverged, trend, run_dir, steps, trainer["nan_policy"], overrides)
        )
    if result.interrupted:
        last = checkpointer.save()
        raise Interrupted(
            f"{stop.name} at epoch {state.epoch + (1 if state.batch else 0)} of {trainer['epochs']}, batch "
            f"{state.batch} of {steps} (step {state.step}). The state after that step is in {shown(last)}. Go on with:",
            stop.exit_code, command=command("train", override("resume", shown(run_dir))),
        )  # fmt: skip


def test_best(built: Built, result: FitResult, lr: LearningRate, warnings: list[str], reporter: Any) -> dict[str, Any]:
    """The best epoch's weights back in the model, scored on the test split; what the curves say, warned."""
    built.network.model.load_state_dict(result.best_state)
    test = built.step.score(built.network.model, built.problem.test)
    data, loss = built.problem.data, built.problem.head.loss
    if built.step.criterion is not None:  # the perceptron rule: did an epoch go by without an update?
        converged, text = perceptron_outcome(result.history, len(data.train))
        if converged:
            reporter.print(Text(text, style="green"))
        else:
            warnings.append(text)
            reporter.warn(text)
    curve = [] if built.step.criterion is not None else result.history  # the perceptron criterion is no loss curve
    for note in result_warnings(curve, result.best_val, task=data.task, loss=loss, k=data.num_classes, lr=lr.used):
        warnings.append(note)
        reporter.warn(note)
    return test


def write_results(cfg_used: dict[str, Any], overrides: list[str], built: Built, result: FitResult,
                  metrics: dict[str, Any], run_dir: Path, tensorboard: TensorBoardLogger, pictures: Pictures,
                  reporter: ConsoleReporter) -> None:  # fmt: skip
    """Rank 0: the test pictures and the hparams with their final values in TensorBoard, the pictures of the kept
    weights as PNGs and the layer health, then metrics.json (its ``logging_s``: what the scalars, texts, pictures,
    health and hparams cost this process), then the summary."""
    data, epochs = built.problem.data, len(result.history)
    if data.task == "classification":
        tensorboard.text(
            "test/confusion_matrix", confusion_markdown(metrics["test"]["confusion_matrix"], data.names), epochs
        )
    pictures.dashboard.test(metrics["test"], epochs)
    hparams, varying = hparam_values(flatten(cfg_used), overrides)
    tensorboard.finish(hparams, final_scalars(metrics, result, cfg_used["trainer"]["nan_policy"]), step=epochs,
                       varying=varying)  # fmt: skip
    metrics.update(pictures.finish(run_dir, f"best epoch {result.best_epoch}"))
    metrics["logging_s"] = tensorboard.seconds + pictures.seconds
    write_record(run_dir / "metrics.json", metrics)
    truth, layers = truth_parts(metrics.get("truth_table")), health_table(metrics.get("health"))
    reporter.summary(metrics, run_dir, [*truth, *([Text("")] if truth and layers else []), *layers])


def diverged_message(where: dict[str, Any], trend: LossTrend, run_dir: Path, steps: int, nan_policy: str,
                     overrides: list[str]) -> str:  # fmt: skip
    """What happened (step, epoch, lr), what is kept, and what to try."""
    last = run_dir / "checkpoints" / "last.safetensors"
    good = peek(last).meta if last.is_file() else None
    kept = (f"{shown(last)} holds the last good state (epoch {good['epoch']}, step {good['step']})" if good is not None
            else "no checkpoint had been written yet")  # fmt: skip
    return f"{diverged_text(where, steps, kept)} {divergence_advice(where, trend.points, nan_policy=nan_policy, overrides=overrides)}"


def prepare_argv(args: list[str]) -> list[str]:
    """The cli calls this before Hydra: ``resume=`` picks the run's dir and overrides; under torchrun
    a rank other than 0 gets a throw-away run dir."""
    return distributed.rank_argv(resume_argv(args))


def run(cfg: DictConfig) -> float:
    """One run; returns its :func:`objective`, which Hydra's sweepers (Optuna) read. In a sweep, a
    run whose loss diverged returns NaN (Optuna records a failed trial) and the sweep goes on."""
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    with user_errors(interrupted=lambda: go_on_note(run_dir, shown(run_dir))):
        try:
            metrics = train(cfg, run_dir, overrides=list(hc.overrides.task), jobs=parallel_jobs(hc.launcher))
        except TrainingDiverged as err:
            if hc.mode != RunMode.MULTIRUN:
                raise
            print_error(f"job {hc.job.num} ({' '.join(hc.overrides.task)}): {err} The sweep goes on; this job's "
                        f"objective is NaN.", label="warning")  # fmt: skip
            return math.nan
    return objective(metrics)
