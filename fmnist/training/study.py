"""A search that learns across nights: [[study]] tables ask a persistent Optuna study
(TPE by default) for their variants, and every result is told back to it.

    [[study]]
    name = "mlp"                   # prefix of the variants' names
    samples = 8                    # variants asked of the study per run
    study = "fmnist-mlp"           # the study's name (default: name)
    sampler = "tpe"                # or "random"
    startup_trials = 8             # TPE: random draws before it models the results
    learning_rate = {loguniform = [1e-4, 3e-3]}
    dropout = {uniform = [0.1, 0.4]}
    hidden = {choice = [[128], [256, 128]]}

The space is written as [[random]]'s (fmnist/training/spaces.py). The study lives beside
the runs, in `<runs dir's parent>/.studies/<study>.journal`: on disk, Optuna's
JournalStorage on a file (appends under a lock, no server); in a bucket, the same
JournalStorage on one object per entry (fmnist/training/bucket_journal.py). The next
night's run with the same runs directory asks a study that knows every earlier night's
trials. A finished variant is told as COMPLETE with its validation accuracy, a variant
stopped by successive halving as PRUNED after its rungs' accuracies are reported as
intermediate values, a failed one as FAIL. Optuna is imported only here and in
bucket_journal.py, and only when a run uses a study.
"""

from __future__ import annotations

import math
import warnings

from fmnist.core import storage
from fmnist.training import spaces

STUDY_DIR = ".studies"
SAMPLERS = ("tpe", "random")
OWN_KEYS = ("name", "samples", "sample_seed", "study", "sampler", "startup_trials")


def check(table: dict) -> dict:
    """The [[study]] table's own settings, checked: {study, sampler, startup_trials}.
    Raises ValueError naming the key."""
    study = table.get("study", table.get("name"))
    if (
        not isinstance(study, str)
        or not study
        or not study.replace("-", "").replace("_", "").isalnum()
    ):
        raise ValueError("key 'study': a name of letters, digits, '-' and '_'")
    sampler = table.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise ValueError(f"key 'sampler': one of {', '.join(SAMPLERS)}; got {sampler!r}")
    startup = table.get("startup_trials", 10)
    if not isinstance(startup, int) or isinstance(startup, bool) or not 0 <= startup <= 10000:
        raise ValueError(f"key 'startup_trials': an integer from 0; got {startup!r}")
    if "startup_trials" in table and sampler != "tpe":
        raise ValueError("key 'startup_trials' has no effect without sampler = \"tpe\"")
    return {"study": study, "sampler": sampler, "startup_trials": startup}


def _space(table: dict) -> dict:
    """The table as spaces.sample reads it: the study's own keys left out."""
    return {k: v for k, v in table.items() if k not in ("study", "sampler", "startup_trials")}


def preview(table: dict) -> list[tuple[str, dict]]:
    """(name, config) pairs drawn at random from the table's space without asking the
    study: what --dry-run shows and what the sweep's checks run on."""
    check(table)
    return spaces.sample(_space(table))


def location(runs_dir, study: str):
    """The study's journal beside the runs: a file on disk, a prefix in a bucket."""
    return storage.as_location(runs_dir).parent / STUDY_DIR / f"{study}.journal"


# A bucket's journals as this process opened them: JournalStorage reads the entries made
# since at every use, so asking and telling replay the whole journal (a GET an entry) once.
JOURNALS: dict[str, object] = {}


def journal(path):
    """Optuna's JournalStorage on the journal at `path` (`location`): a file on disk, one
    object per entry in a bucket (opened once per process: `JOURNALS`)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if storage.is_remote(path):
        from fmnist.training.bucket_journal import BucketJournal

        if str(path) not in JOURNALS:
            JOURNALS[str(path)] = JournalStorage(BucketJournal(path))
        return JOURNALS[str(path)]
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _open(path, name: str, sampler=None):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name,
        storage=journal(path),
        sampler=sampler,
        direction="maximize",
        load_if_exists=True,
    )


def _plain(choices: list) -> bool:
    """Whether Optuna can hold the choices themselves (else their indices)."""
    return all(isinstance(c, (str, int, float, bool)) for c in choices)


def _distributions(space: dict):
    """Optuna distributions for the table's sampled keys; a choice among lists (hidden)
    is a choice among their indices (Optuna's categories are plain values)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out = {}
    for key, s in space.items():
        ((kind, arg),) = s.items()
        if kind == "choice":
            out[key] = CategoricalDistribution(arg if _plain(arg) else list(range(len(arg))))
        elif all(isinstance(x, int) for x in arg):
            out[key] = IntDistribution(arg[0], arg[1], log=kind == "loguniform")
        else:
            out[key] = FloatDistribution(float(arg[0]), float(arg[1]), log=kind == "loguniform")
    return out


def _value(space: dict, value):
    ((kind, arg),) = space.items()
    if kind == "choice":
        return value if _plain(arg) else arg[value]
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.3g}")  # as [[random]]: the name shows the value trained
    return value


class Asker:
    """Expands [[study]] tables by asking their persistent studies (variants.parse's
    `study`), and remembers which trial each variant is: {variant: {study, number}}.

    Args:
        runs_dir: the run's directory (a Path or a bucket's UPath); the studies are kept
            beside it (`location`).
    """

    def __init__(self, runs_dir):
        self.runs_dir = storage.as_location(runs_dir)
        self.trials: dict[str, dict] = {}

    def __call__(self, table: dict) -> list[tuple[str, dict]]:
        import optuna

        own = check(table)
        pairs = spaces.sample(_space(table))  # checks the space and the count
        space = {k: v for k, v in table.items() if k not in OWN_KEYS and isinstance(v, dict)}
        fixed = {k: v for k, v in table.items() if k not in OWN_KEYS and k not in space}
        path = location(self.runs_dir, own["study"])
        seed = table.get("sample_seed", 0)
        known = len(_open(path, own["study"]).trials)
        with warnings.catch_warnings():  # constant_liar is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = (
                optuna.samplers.TPESampler(
                    seed=seed + known,
                    n_startup_trials=own["startup_trials"],
                    constant_liar=True,  # trials asked together differ from each other
                )
                if own["sampler"] == "tpe"
                else optuna.samplers.RandomSampler(seed=seed + known)
            )
        study = _open(path, own["study"], sampler)
        distributions = _distributions(space)
        out = []
        for _ in pairs:
            trial = study.ask(distributions)
            config = {**fixed, **{k: _value(space[k], trial.params[k]) for k in space}}
            name = spaces.variant_name(f"{table['name']}{trial.number:03d}", config, list(space))
            self.trials[name] = {"study": own["study"], "number": trial.number}
            out.append((name, config))
        return out


def tell(runs_dir, trials: dict[str, dict], results: list, rungs: list[int] | None) -> list[str]:
    """Tell each study what became of its trials: COMPLETE (validation accuracy), PRUNED
    (a `stopped` variant, its rungs reported first) or FAIL.

    Args:
        runs_dir: the run's directory (the studies are beside it).
        trials: {variant: {study, number}} (Asker.trials, kept in results.json).
        results: the run's VariantResults; interrupted ones are not told.
        rungs: the rungs' epochs under successive halving, else None.

    Returns:
        The variants told.
    """
    from optuna.trial import TrialState

    from fmnist.core import internals

    told, studies = [], {}
    for r in results:
        trial = trials.get(r.name)
        if trial is None or r.status == "interrupted":
            continue
        if trial["study"] not in studies:
            studies[trial["study"]] = _open(location(runs_dir, trial["study"]), trial["study"])
        study = studies[trial["study"]]
        if r.status == "ok":
            study.tell(trial["number"], r.val_accuracy, skip_if_finished=True)
        elif r.status == "stopped":
            live = internals.optuna_trial(study, trial["number"])
            if live is not None:
                for epochs, accuracy in zip(rungs or [], r.rung_accuracies or []):
                    live.report(accuracy, epochs)
            study.tell(trial["number"], state=TrialState.PRUNED, skip_if_finished=True)
        else:
            study.tell(trial["number"], state=TrialState.FAIL, skip_if_finished=True)
        told.append(r.name)
    return told
