"""ivmc from Python: scenarios, runs and sweeps of co-resident VMs, simulated or real.

Scenarios are plain dicts that mirror the TOML format (scenarios/FORMAT.md): top-level keys,
sub-dicts for ``platform``, ``channel``, ``membership``, ``pool``, ``costs``, and lists of
dicts for ``vm``, ``workload``, ``event`` and ``generator``. Wherever a scenario is taken, a
TOML string, a path, ``"default"`` or ``"preset:NAME"`` works too.

>>> import ivmc
>>> s = ivmc.default()                     # the embedded default scenario, as a dict
>>> s["channel"]["notify"] = "atw"
>>> df = ivmc.run(s, seed=3)               # one run, in a child process: a one-row DataFrame
>>> print(df.attrs["summary"])
>>> table = ivmc.sweep(s, {"membership.period_ms": [10, 100]}, seeds=4)
>>> real = ivmc.sweep(s, {"membership.period_ms": [10, 100]}, backend="host",
...                   set={"duration_s": 2})   # the same sweep on this machine's processes

Every function checks scenarios with the same loader as the ``ivmc`` command line and raises
:class:`ScenarioError` with the same messages: ``file:line`` for TOML, the key path
(``workload[1].to``) for dicts and overrides.

``backend`` chooses where a scenario runs, as ``ivmc run --backend`` does: ``"sim"`` (the
default) simulates it on the SimGrid model; the other names in :func:`backends` (``"host"``:
this machine's processes; ``"kvm"``, ``"xen"``: QEMU guests, Xen domains) run it for real into
the same columns. A backend that cannot play part of a scenario raises :class:`ScenarioError`
naming the key before anything starts.

Each run happens in its own child process (SimGrid allows one simulation per process; a real
backend's crash stays in its child), so a notebook may call :func:`run` and :func:`sweep` any
number of times. :func:`sweep` with a
``dask.distributed`` client runs the points on that cluster; ``ivmc`` must be importable on its
workers (the same PYTHONPATH).
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import tempfile
import tomllib
import uuid
from pathlib import Path
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, Union

import pandas as pd

from . import _ivmc
from ._toml import DictError, dict_to_toml, issue_at_path, override_text

__all__ = [
    "ScenarioError",
    "Scenario",
    "backends",
    "default",
    "load",
    "parse",
    "presets",
    "preset_text",
    "run",
    "summarize",
    "sweep",
    "to_toml",
    "validate",
    "with_overrides",
]

#: A scenario: a dict mirroring the TOML; or a string, either TOML text (when it holds a line
#: break or an ``=``) or a scenario argument (a file path, ``"default"``, ``"preset:NAME"``);
#: or a path.
Scenario = Union[Mapping[str, Any], str, "os.PathLike[str]"]

#: Overrides: ``{"channel.notify": "atw", ...}`` or ``["channel.notify=atw", ...]``, applied in
#: order (keys as in ``ivmc run --set``, scenarios/FORMAT.md).
Overrides = Union[Mapping[str, Any], Sequence[str], None]

_DICT_ORIGIN = "<dict>"
_FIXED_COLUMNS = ("point", "seed", "events", "wall_s")


class ScenarioError(Exception):
    """An invalid scenario, override or sweep point.

    ``issues`` lists every problem as ``(where, what)``: ``where`` is ``file:line`` for TOML
    (``"my.toml:12"``, then ``what`` starts with the key) or a key path for dicts and overrides
    (``"workload[1].to"``). ``str(error)`` is one ``where: what`` line per issue, the text the
    ``ivmc`` command line prints.
    """

    def __init__(self, issues: Iterable[tuple[str, str]]) -> None:
        """Builds the error from ``(where, what)`` pairs."""
        self.issues: list[tuple[str, str]] = [(str(w), str(m)) for w, m in issues]
        super().__init__("\n".join(f"{w}: {m}" for w, m in self.issues))

    def __reduce__(self) -> tuple[type, tuple[list[tuple[str, str]]]]:
        """Pickles by the issues (errors cross process boundaries in Dask)."""
        return (ScenarioError, (self.issues,))


# --- Scenarios ---------------------------------------------------------------------------------


def _is_toml_text(text: str) -> bool:
    """Whether a scenario string is TOML text rather than a path or scenario argument."""
    return "\n" in text or "=" in text


def _canonical(scenario: Scenario) -> str:
    """Returns any scenario as checked TOML in the form ``to_toml`` writes; raises
    ScenarioError."""
    if isinstance(scenario, Mapping):
        try:
            text, paths = dict_to_toml(scenario)
        except DictError as e:
            raise ScenarioError([(e.where, e.what)]) from None
        try:
            return _ivmc.canonical_toml(text, _DICT_ORIGIN)
        except ScenarioError as e:
            issues = [issue_at_path(w, m, _DICT_ORIGIN, paths) for w, m in e.issues]
            raise ScenarioError(issues) from None
    if isinstance(scenario, os.PathLike):
        return _ivmc.load_toml(os.fspath(scenario))
    if isinstance(scenario, str):
        if _is_toml_text(scenario):
            return _ivmc.canonical_toml(scenario, "<string>")
        return _ivmc.load_toml(scenario)
    raise TypeError(
        f"a scenario is a dict, TOML text, a path, 'default' or 'preset:NAME'; "
        f"got {type(scenario).__name__}"
    )


def _to_dict(canonical: str) -> dict[str, Any]:
    """Reads canonical TOML into a scenario dict."""
    return tomllib.loads(canonical)


def _override_pairs(overrides: Overrides) -> list[tuple[str, str]]:
    """Returns overrides as ``(key, value text)`` pairs, in order."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [(str(k), override_text(v, str(k))) for k, v in overrides.items()]
    if isinstance(overrides, str):
        overrides = [overrides]
    pairs = []
    for item in overrides:
        key, eq, value = str(item).partition("=")
        if not eq or not key.strip():
            raise ScenarioError([(str(item).strip(), "expected KEY=VALUE")])
        pairs.append((key.strip(), value))
    return pairs


def load(path_or_arg: Union[str, "os.PathLike[str]"]) -> dict[str, Any]:
    """Loads a scenario as a dict: a TOML file, ``"default"`` (the embedded default scenario)
    or ``"preset:NAME"`` (the default with preset NAME applied).

    Raises ScenarioError (``file:line: key: what``) if it is invalid or cannot be read.
    """
    return _to_dict(_ivmc.load_toml(os.fspath(path_or_arg)))


def parse(toml_text: str, origin: str = "<string>") -> dict[str, Any]:
    """Parses scenario TOML text into a dict (every key spelled out, defaults included).

    ``origin`` names the text in error messages (``origin:line``). Raises ScenarioError.
    """
    return _to_dict(_ivmc.canonical_toml(toml_text, origin))


def to_toml(scenario: Scenario) -> str:
    """Returns a scenario as TOML text that :func:`parse` (and ``ivmc run``) read back to the
    same scenario. Raises ScenarioError if it is invalid."""
    return _canonical(scenario)


def validate(scenario: Scenario) -> list[tuple[str, str]]:
    """Returns every problem of a scenario as ``(where, what)``; an empty list when it can run.

    ``where`` is a key path for a dict (``"workload[1].to"``), ``file:line`` for TOML.
    """
    try:
        _canonical(scenario)
    except ScenarioError as e:
        return e.issues
    return []


def default() -> dict[str, Any]:
    """Returns the embedded default scenario (scenarios/default.toml) as a dict."""
    return load("default")


def examples() -> list[str]:
    """Names of the example scenarios shipped in the package (scenarios/examples/*.toml)."""
    return sorted(p.stem for p in (Path(__file__).parent / "examples").glob("*.toml"))


def example(name: str) -> dict[str, Any]:
    """Returns the example scenario ``name`` (scenarios/examples/NAME.toml, shipped inside the
    package, so it is found from any working directory) as a dict."""
    path = Path(__file__).parent / "examples" / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"no example scenario {name!r}; the examples: {', '.join(examples())}")
    return load(path)


def with_overrides(scenario: Scenario, set: Overrides, seed: int | None = None) -> dict[str, Any]:
    """Returns a scenario with overrides applied, as a dict.

    ``set`` is ``{"channel.notify": "atw", "workload[0].message_bytes": 4096}`` or
    ``["channel.notify=atw", ...]`` (dotted keys as in ``ivmc run --set``, applied in order);
    ``seed`` replaces the scenario's seed. Raises ScenarioError naming the key.
    """
    return _to_dict(_ivmc.point_toml(_canonical(scenario), _override_pairs(set), seed))


def backends() -> list[str]:
    """The names of the backends this build has, ``"sim"`` first (``backend=`` takes one)."""
    return list(_ivmc.backends())


def presets() -> pd.DataFrame:
    """Returns the embedded presets, one surveyed system each: columns name, system, summary.

    Use one as ``load("preset:NAME")`` or with ``{"preset": "NAME", ...}`` in a dict.
    """
    return pd.DataFrame(_ivmc.presets(), columns=["name", "system", "summary"])


def preset_text(name: str) -> str:
    """Returns preset ``name``'s TOML fragment (scenarios/presets/NAME.toml). Raises KeyError."""
    text = _ivmc.preset_text(name)
    if text is None:
        raise KeyError(f"no preset named {name!r}; see ivmc.presets()")
    return text


# --- Results as DataFrames ---------------------------------------------------------------------


def _param_series(texts: list[str]) -> list[Any]:
    """Returns a parameter column's values (as given, in text) as numbers or booleans when all of
    them read as such, else as the texts."""
    try:
        return [int(t) for t in texts]
    except ValueError:
        pass
    try:
        return [float(t) for t in texts]
    except ValueError:
        pass
    if all(t in ("true", "false") for t in texts):
        return [t == "true" for t in texts]
    return list(texts)


# Metric names that end in a unit or name a ratio (docs/metrics.md); every other metric counts
# things (sends, notifications, migrations, ...).
_MEASURE_SUFFIXES = ("_s", "_us", "_mbps", "_per_s", "_share", "_exposure", "_utilisation", "_mean")


def _is_count(column: str) -> bool:
    return column not in ("point", "seed", "events", "wall_s") and not column.endswith(
        _MEASURE_SUFFIXES
    )


def _frame(
    rows: list[Mapping[str, Any]], columns: list[str], param_keys: list[str]
) -> pd.DataFrame:
    """Builds a results DataFrame from rows of text or numbers: point, seed and events as
    integers, parameters as numbers when they all are, count metrics (``sends``,
    ``notifications``, ...) as integers when every value is a whole number (floats when a
    backend reported NaN), every other metric and wall_s as floats.

    Sweeps made locally (text from results.csv) and on Dask (numbers from the runs) go through
    here alike, so both give the same frame.
    """
    data: dict[str, Any] = {}
    for c in columns:
        values = [r[c] for r in rows]
        if c in ("point", "seed", "events"):
            data[c] = pd.Series([int(v) for v in values], dtype="int64")
        elif c in param_keys:
            data[c] = pd.Series(_param_series([str(v) for v in values]))
        elif _is_count(c) and all(math.isfinite(f) and f == int(f) for f in map(float, values)):
            data[c] = pd.Series([int(float(v)) for v in values], dtype="int64")
        else:
            data[c] = pd.Series([float(v) for v in values], dtype="float64")
    frame = pd.DataFrame(data, columns=columns)
    if "point" in columns:
        frame = frame.sort_values(["point", "seed"], kind="stable").reset_index(drop=True)
    return frame


def run(
    scenario: Scenario, seed: int | None = None, set: Overrides = None, backend: str = "sim"
) -> pd.DataFrame:
    """Runs one scenario point on ``backend`` in a child process and returns its results as a
    one-row DataFrame.

    Columns: ``seed``, every metric (docs/metrics.md, units in the names; NaN where the backend
    cannot take a measure), ``events`` and ``wall_s`` (in the simulator, the only value that
    differs between two runs of the same scenario and seed). ``df.attrs["summary"]`` holds the
    summary ``ivmc run`` prints; ``df.attrs["scenario"]`` the scenario run, as TOML;
    ``df.attrs["backend"]`` the backend; with ``output.changes`` set (``set={"output.changes":
    True}``), ``df.attrs["changes"]`` holds its membership changes as a DataFrame with the
    columns of changes.csv (docs/results.md) after ``point`` and ``seed``.

    ``set`` overrides keys first (``{"channel.notify": "atw"}`` or ``["channel.notify=atw"]``),
    then ``seed`` replaces the scenario's seed: the same order as ``ivmc run --set ... --seed``.
    ``backend`` is a name from :func:`backends` (``ivmc run --backend``).
    Raises ScenarioError for an invalid scenario or one the backend cannot play, ValueError for
    an unknown backend, RuntimeError if the run fails, and KeyboardInterrupt (stopping the
    child) on Ctrl-C.
    """
    base = _canonical(scenario)
    pairs = _override_pairs(set)
    point = _ivmc.point_toml(base, pairs, seed)
    result = _ivmc.run_point(base, pairs, seed, backend)
    row: dict[str, Any] = {"seed": _to_dict(point)["seed"]}
    row.update(dict(result["metrics"]))
    row["events"] = result["events"]
    row["wall_s"] = result["wall_s"]
    columns = ["seed"] + [name for name, _ in result["metrics"]] + ["events", "wall_s"]
    frame = _frame([row], columns, [])
    frame.attrs["summary"] = result["summary"]
    frame.attrs["scenario"] = point
    frame.attrs["backend"] = backend
    if result["changes"] is not None:
        frame.attrs["changes"] = _changes_frame(result["changes"])
    return frame


def _changes_frame(records: list[dict[str, str]]) -> pd.DataFrame:
    """changes.csv's columns (docs/results.md) from a run's records: counts as integers, hosts
    as integers (-1 where there is none), times and delays as floats."""
    columns = ["time_s", "kind", "vm", "from_host", "to_host", "observers", "notified",
               "detection_max_s", "detection_mean_s", "stale_sends", "race_operations",
               "race_errors"]
    data: dict[str, Any] = {}
    for c in columns:
        values = [r[c] for r in records]
        if c in ("kind", "vm"):
            data[c] = pd.Series(values, dtype="object")
        elif c in ("from_host", "to_host"):
            data[c] = pd.Series([int(v) if v else -1 for v in values], dtype="int64")
        elif c in ("time_s", "detection_max_s", "detection_mean_s"):
            data[c] = pd.Series([float(v) for v in values], dtype="float64")
        else:
            data[c] = pd.Series([int(v) for v in values], dtype="int64")
    return pd.DataFrame(data, columns=columns)


# --- Sweeps ------------------------------------------------------------------------------------


def _param_lists(params: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """Returns sweep parameters as ``(key, [value texts])``, checking their shape."""
    if not isinstance(params, Mapping):
        raise TypeError("params is a dict: scenario key -> list of values")
    out = []
    for key, values in params.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise TypeError(f"params[{key!r}]: expected a list of values; got {values!r}")
        texts = [override_text(v, str(key)) for v in values]
        if not texts:
            raise ValueError(f"sweep: parameter {key} has no values")
        if len(set(texts)) != len(texts):
            raise ValueError(f"sweep: parameter {key} lists a value twice: {texts}")
        if key in _FIXED_COLUMNS:
            raise ValueError(f"sweep: {key} is not a parameter (use seeds and first_seed)")
        out.append((str(key), texts))
    return out


def _point_label(keys: list[str], values: Sequence[str]) -> str:
    """``"channel.notify=atw, membership.period_ms=50"``, as run_sweep names points."""
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values)) or "the base scenario"


def _run_task(
    canonical: str, overrides: list[tuple[str, str]], seed: int, backend: str
) -> dict[str, Any]:
    """One point of a Dask sweep, on a worker: runs it in a fresh child process."""
    result = _ivmc.run_point(canonical, overrides, seed, backend)
    return {"metrics": result["metrics"], "events": result["events"], "wall_s": result["wall_s"]}


def _sweep_dask(
    client: Any,
    canonical: str,
    sets: list[tuple[str, str]],
    plist: list[tuple[str, list[str]]],
    seeds: list[int],
    backend: str,
) -> pd.DataFrame:
    """Runs every (point, seed) as one task on a dask.distributed client; returns the frame
    a local sweep gives."""
    keys = [k for k, _ in plist]
    points = list(itertools.product(*(values for _, values in plist)))
    # Every point must build, validate and be playable on the backend before anything runs, as
    # in run_sweep.
    for p, values in enumerate(points):
        try:
            _ivmc.check_point(canonical, sets + list(zip(keys, values)), seeds[0], backend)
        except ScenarioError as e:
            label = _point_label(keys, values)
            issues = [(f"sweep point {p} ({label}): {w}", m) for w, m in e.issues]
            raise ScenarioError(issues) from None
    tag = uuid.uuid4().hex[:8]
    runs = [(p, s) for p in range(len(points)) for s in seeds]
    futures = [
        client.submit(
            _run_task,
            canonical,
            sets + list(zip(keys, points[p])),
            s,
            backend,
            key=f"ivmc-{tag}-point{p}-seed{s}",
            pure=False,
        )
        for p, s in runs
    ]
    results = client.gather(futures)
    rows: list[dict[str, Any]] = []
    metric_names: list[str] | None = None
    for (p, s), result in zip(runs, results):
        names = [name for name, _ in result["metrics"]]
        if metric_names is None:
            metric_names = names
            clash = set(names) & (set(keys) | set(_FIXED_COLUMNS))
            if clash:
                raise RuntimeError(f"sweep: the metrics repeat the column name(s) {sorted(clash)}")
        elif names != metric_names:
            raise RuntimeError(f"sweep: point {p} seed {s} reports other metrics: {names}")
        row: dict[str, Any] = {"point": p, "seed": s}
        row.update(zip(keys, points[p]))
        row.update(dict(result["metrics"]))
        row["events"] = result["events"]
        row["wall_s"] = result["wall_s"]
        rows.append(row)
    columns = ["point", "seed"] + keys + (metric_names or []) + ["events", "wall_s"]
    return _frame(rows, columns, keys)


def _sweep_local(
    canonical: str,
    sets: list[tuple[str, str]],
    plist: list[tuple[str, list[str]]],
    seeds: int,
    first_seed: int,
    jobs: int,
    out: str | None,
    progress: bool,
    backend: str,
    force: bool = False,
) -> pd.DataFrame:
    """Runs the sweep with ivmc::experiment::run_sweep (child processes) into ``out`` (a
    temporary directory if None) and returns this sweep's rows of its results.csv."""
    keys = [k for k, _ in plist]
    points = {values: p for p, values in enumerate(itertools.product(*(v for _, v in plist)))}
    wanted_seeds = range(first_seed, first_seed + seeds)
    holder = tempfile.TemporaryDirectory(prefix="ivmc-sweep-") if out is None else nullcontext(out)
    with holder as directory:
        _ivmc.sweep(
            canonical, sets, plist, seeds, first_seed, jobs, os.fspath(directory), progress, backend,
            force,
        )
        path = os.path.join(directory, "results.csv")
        with open(path, newline="") as f:
            columns = next(csv.reader(f))
        rows = []
        # A resumed directory may hold rows of earlier sweeps (other values or seeds): keep this
        # sweep's, numbered by its own lists of values.
        for row in _ivmc.read_results(path):
            values = tuple(row[k] for k in keys)
            if values in points and int(row["seed"]) in wanted_seeds:
                row["point"] = str(points[values])
                rows.append(row)
    return _frame(rows, columns, keys)


def sweep(
    scenario: Scenario,
    params: Mapping[str, Sequence[Any]],
    seeds: int = 1,
    jobs: int = 0,
    out: str | os.PathLike[str] | None = None,
    client: Any = None,
    first_seed: int | None = None,
    progress: bool = False,
    backend: str = "sim",
    set: Overrides = None,
    force: bool = False,
) -> pd.DataFrame:
    """Runs a scenario over every combination of parameter values, ``seeds`` seeds each, and
    returns one DataFrame row per (point, seed), sorted by point then seed.

    ``params`` maps scenario keys (as in ``ivmc sweep --param``: ``"channel.notify"``,
    ``"workload[0].message_bytes"``) to lists of values; the first key varies slowest. Seeds
    are ``first_seed``, ``first_seed + 1``, ... (default: the scenario's seed, after ``set``).
    ``set`` changes the scenario before the sweep, as ``ivmc sweep --set`` does
    (``{"duration_s": 2}`` or ``["duration_s=2"]``; each point applies them first, then its
    parameters). ``backend`` is where every run happens (:func:`backends`, as ``ivmc sweep
    --backend``).

    Columns (docs/results.md): ``point``, ``seed``, one per parameter (numbers when every value
    is one), every metric, ``events``, ``wall_s``.

    Without ``client``: ivmc's sweep runner (``ivmc sweep``) runs the points in ``jobs`` child
    processes (0: the backend's default: one per CPU simulated, 1 on the real backends) and
    writes ``out``/results.csv and meta.json (a temporary
    directory, removed afterwards, if ``out`` is None; an existing ``out`` resumes its sweep; one
    that another scenario, backend or ivmc version made raises RuntimeError naming what differs,
    unless ``force=True``, which deletes its results and starts over, as ``ivmc sweep --force``).
    With a ``dask.distributed.Client``: one task per (point, seed) on that cluster, each run in
    a fresh child process of its worker; ``jobs`` and ``out`` do not apply. Both ways build
    each point the same way (the overrides in order, then the seed) and give the same numbers;
    only ``wall_s`` differs.

    Raises ScenarioError naming the point if one is invalid or refused by the backend (before
    anything runs), ValueError for an unknown backend, RuntimeError if runs failed, KeyboardInterrupt on Ctrl-C (a local sweep keeps its completed
    rows in ``out``).
    """
    canonical = _canonical(scenario)
    sets = _override_pairs(set)
    plist = _param_lists(params)
    if seeds < 1:
        raise ValueError("sweep: seeds must be at least 1")
    if backend not in _ivmc.backends():
        raise ValueError(f"unknown backend {backend!r}; this build has {', '.join(backends())}")
    if first_seed is None:
        first_seed = int(_to_dict(_ivmc.overridden_toml(canonical, sets))["seed"])
    if client is None:
        directory = None if out is None else os.fspath(out)
        return _sweep_local(
            canonical, sets, plist, seeds, first_seed, jobs, directory, progress, backend, force
        )
    if out is not None or force:
        raise ValueError("sweep: out and force are for local sweeps; with a client, save the "
                         "DataFrame")
    return _sweep_dask(
        client, canonical, sets, plist, list(range(first_seed, first_seed + seeds)), backend
    )


def summarize(out: str | os.PathLike[str]) -> pd.DataFrame:
    """The summary of an output directory of ``ivmc run --out``, ``ivmc sweep`` or
    :func:`sweep` (``out=``), as ``ivmc summarize DIR`` prints it: one row per point with
    ``point``, its parameter values, ``seeds``, and for each headline metric (docs/results.md
    "Summary") ``<metric>_mean`` and ``<metric>_ci95`` (the half-width of Student's t 95%
    interval over the seeds; NaN for one seed).

    Raises RuntimeError when ``out`` holds no results.csv or no complete row.
    """
    keys, points = _ivmc.summarize(os.fspath(out))
    rows: list[dict[str, Any]] = []
    for p in points:
        row: dict[str, Any] = {"point": int(p["point"]) if p["point"] else 0}
        row.update(zip(keys, p["values"]))
        row["seeds"] = int(p["seeds"])
        for name, _n, mean, ci95 in p["metrics"]:
            row[name + "_mean"] = float(mean)
            row[name + "_ci95"] = float(ci95)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for k in keys:
        frame[k] = _param_series([str(v) for v in frame[k]])
    return frame
