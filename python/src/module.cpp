// ivmc._ivmc: the C++ side of the `ivmc` Python package (python/ivmc/). Scenarios cross this
// boundary as TOML text (the Python side turns dicts into TOML and back), so every scenario a
// Python user builds goes through the same loader, overrides and checks as the command line.
//
// Runs go through the table of backends (backends/table: "sim", "host", ...) and happen in
// forked children (experiment/child_run.hpp), as in `ivmc sweep`: SimGrid keeps one engine per
// process, and a notebook (or a Dask worker) is a long-lived process that runs many points.
#include "ivmc/backends/table.hpp"
#include "ivmc/experiment/child_run.hpp"
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/overrides.hpp"
#include "ivmc/experiment/presets.hpp"
#include "ivmc/experiment/summary.hpp"
#include "ivmc/experiment/sweep.hpp"
#include "ivmc/experiment/to_toml.hpp"
#include "ivmc/experiment/validate.hpp"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;
namespace ex = ivmc::experiment;

namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

// --- Scenarios --------------------------------------------------------------------------------

// A scenario written by to_toml (the package's canonical form of every scenario it holds), read
// back without its items' source lines: those are lines of the canonical text, which the user
// never saw, so problems found later are reported at key paths ("workload[1].to").
ex::Scenario parse_canonical(const std::string& toml) {
  ex::Scenario s = ex::parse_scenario(toml, "<scenario>");
  for (auto& vm : s.vms) vm.line = 0;
  for (auto& w : s.workloads) w.line = 0;
  for (auto& e : s.events) e.line = 0;
  for (auto& g : s.generators) g.line = 0;
  s.set_at.clear();
  return s;
}

// The scenario a point runs: the canonical `toml`, then each `key=value` override in order, then
// the seed; the same order as ivmc run and ivmc sweep. Throws ScenarioError if the result is
// invalid.
ex::Scenario build_point(const std::string& toml, const Pairs& overrides,
                         std::optional<std::uint64_t> seed) {
  ex::Scenario s = parse_canonical(toml);
  for (const auto& [key, value] : overrides) ex::apply_override(s, key + "=" + value);
  if (seed) s.seed = *seed;
  if (auto issues = ex::validate(s); !issues.empty()) throw ex::ScenarioError(std::move(issues));
  return s;
}

std::vector<std::tuple<std::string, std::string, std::string>> preset_rows() {
  std::vector<std::tuple<std::string, std::string, std::string>> out;
  for (auto& p : ex::presets()) out.emplace_back(p.name, p.system, p.summary);
  return out;
}

// --- One point in a child process -------------------------------------------------------------

// Raised by the wait loop when the interpreter has a pending exception (a KeyboardInterrupt):
// the child is killed on the way out, and the Python error is raised once the GIL is back.
struct PythonErrorPending {};

// The backend `name` as Python takes it (the table's settings: no progress lines, logs in a
// temporary directory, the default cache).
std::unique_ptr<ex::Backend> make_backend(const std::string& name,
                                          const std::string& out_dir = "") {
  ex::BackendSettings settings;
  settings.out_dir = out_dir; // the simulator's SimGrid log, a real backend's logs
  settings.cache_dir = ex::default_cache_dir();
  return ivmc::backends::make_backend(name, settings);
}

// Runs `scenario` on `backend` in a forked child (experiment::run_in_child) and returns what it
// reported. The GIL is released while the child runs; every 100 ms the parent takes it back to
// let a pending KeyboardInterrupt (or any signal handler's exception) through, killing the child.
py::dict run_in_child(ex::Backend& backend, const ex::Scenario& scenario) {
  ex::RunResult r;
  try {
    py::gil_scoped_release release;
    r = ex::run_in_child([&] { return backend.run(scenario, scenario.seed); },
                         [] {
                           py::gil_scoped_acquire acquire;
                           if (PyErr_CheckSignals() != 0) throw PythonErrorPending{};
                         });
  } catch (const PythonErrorPending&) {
    throw py::error_already_set();
  }
  py::list metrics;
  for (const auto& m : r.metrics) metrics.append(py::make_tuple(m.name, m.value));
  py::dict out;
  out["metrics"] = metrics;
  out["events"] = r.events;
  out["wall_s"] = r.wall_s;
  out["summary"] = r.summary;
  py::list changes; // with output.changes: one dict per change, column -> text (changes.csv)
  for (const auto& c : r.changes) {
    py::dict d;
    const auto fields = ex::change_fields(c);
    for (std::size_t i = 0; i < fields.size(); ++i) d[py::str(ex::change_columns()[i])] = fields[i];
    changes.append(d);
  }
  out["changes"] = r.changes_recorded ? py::object(changes) : py::object(py::none());
  return out;
}

// --- Sweeps -----------------------------------------------------------------------------------

std::size_t sweep(const std::string& toml, const Pairs& sets,
                  const std::vector<std::pair<std::string, std::vector<std::string>>>& params,
                  std::uint32_t seeds, std::optional<std::uint64_t> first_seed, unsigned jobs,
                  const std::string& out_dir, bool progress, const std::string& backend_name,
                  bool force) {
  ex::Scenario base = parse_canonical(toml);
  for (const auto& [key, value] : sets) ex::apply_override(base, key + "=" + value);
  const auto backend = make_backend(backend_name, out_dir);
  ex::SweepOptions o;
  o.params = params;
  o.seeds = seeds;
  o.first_seed = first_seed.value_or(base.seed);
  o.jobs = jobs;
  o.out_dir = out_dir;
  o.progress = progress;
  o.force = force;
  py::gil_scoped_release release;
  return ex::run_sweep(base, o, *backend);
}

// `ivmc summarize DIR` as data: (parameter keys, one dict per point).
py::tuple summarize(const std::string& out_dir) {
  const ex::OutputResults out = ex::read_output(out_dir);
  py::list points;
  for (const auto& p : ex::summarize_rows(out.rows, out.param_keys)) {
    py::list metrics;
    for (const auto& m : p.metrics)
      metrics.append(py::make_tuple(m.name, m.n, m.mean, m.half_width));
    py::dict d;
    d["point"] = p.point;
    d["values"] = p.values;
    d["seeds"] = p.seeds;
    d["metrics"] = metrics;
    points.append(d);
  }
  return py::make_tuple(out.param_keys, points);
}

} // namespace

PYBIND11_MODULE(_ivmc, m) {
  m.doc() = "The C++ core of the ivmc package (scenario loader, backends, runs, sweeps); use "
            "`ivmc`.";

  // ex::ScenarioError becomes ivmc.ScenarioError (defined in Python, with `.issues`).
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ex::ScenarioError& e) {
      py::list issues;
      for (const auto& i : e.issues()) issues.append(py::make_tuple(i.where, i.what));
      const py::object cls = py::module_::import("ivmc").attr("ScenarioError");
      PyErr_SetObject(cls.ptr(), cls(issues).ptr());
    } catch (const ex::SweepInterrupted& e) {
      PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
    }
  });

  m.def(
      "canonical_toml",
      [](const std::string& toml, const std::string& origin) {
        return ex::to_toml(ex::parse_scenario(toml, origin));
      },
      py::arg("toml"), py::arg("origin"),
      "Parses and checks a scenario's TOML text (`origin` names it in messages) and returns it "
      "as to_toml writes it (the canonical form). Raises ivmc.ScenarioError.");
  m.def(
      "load_toml",
      [](const std::string& arg) { return ex::to_toml(ex::load_scenario_argument(arg)); },
      py::arg("arg"),
      "A scenario argument (a file, \"default\" or \"preset:NAME\") in canonical form. Raises "
      "ivmc.ScenarioError.");
  m.def(
      "point_toml",
      [](const std::string& toml, const Pairs& overrides, std::optional<std::uint64_t> seed) {
        return ex::to_toml(build_point(toml, overrides, seed));
      },
      py::arg("toml"), py::arg("overrides") = Pairs{}, py::arg("seed") = std::nullopt,
      "A canonical scenario with `key=value` overrides (in order) and the seed applied, checked, "
      "in canonical form. Raises ivmc.ScenarioError.");
  m.def("presets", &preset_rows, "The embedded presets as (name, system, summary).");
  m.def(
      "preset_text", [](const std::string& name) { return ex::preset_text(name); }, py::arg("name"),
      "A preset's TOML fragment, or None.");
  m.def("default_scenario_text", &ex::default_scenario_text,
        "The embedded default scenario's TOML (scenarios/default.toml).");
  m.def("backends", &ivmc::backends::backend_names,
        "The names of the backends this build has (\"sim\" first).");
  m.def(
      "check_point",
      [](const std::string& toml, const Pairs& overrides, std::optional<std::uint64_t> seed,
         const std::string& backend) {
        const ex::Scenario s = build_point(toml, overrides, seed);
        if (auto issues = make_backend(backend)->check(s); !issues.empty())
          throw ex::ScenarioError(std::move(issues));
      },
      py::arg("toml"), py::arg("overrides") = Pairs{}, py::arg("seed") = std::nullopt,
      py::arg("backend") = "sim",
      "Builds the point as point_toml does and raises ivmc.ScenarioError with what `backend` "
      "cannot play (ValueError for an unknown backend).");
  m.def(
      "run_point",
      [](const std::string& toml, const Pairs& overrides, std::optional<std::uint64_t> seed,
         const std::string& backend_name) {
        const ex::Scenario s = build_point(toml, overrides, seed);
        const auto backend = make_backend(backend_name);
        if (auto issues = backend->check(s); !issues.empty())
          throw ex::ScenarioError(std::move(issues));
        return run_in_child(*backend, s);
      },
      py::arg("toml"), py::arg("overrides") = Pairs{}, py::arg("seed") = std::nullopt,
      py::arg("backend") = "sim",
      "Builds the point as point_toml does, checks it against `backend` and runs it there in a "
      "forked child process. Returns {'metrics': [(name, value)], 'events', 'wall_s', "
      "'summary'}.");
  m.def(
      "overridden_toml",
      [](const std::string& toml, const Pairs& overrides) {
        ex::Scenario s = parse_canonical(toml);
        for (const auto& [key, value] : overrides) ex::apply_override(s, key + "=" + value);
        return ex::to_toml(s);
      },
      py::arg("toml"), py::arg("overrides"),
      "A canonical scenario with `key=value` overrides applied, not checked further (a sweep's "
      "base: its points are checked).");
  m.def("sweep", &sweep, py::arg("toml"), py::arg("sets"), py::arg("params"), py::arg("seeds"),
        py::arg("first_seed"), py::arg("jobs"), py::arg("out_dir"), py::arg("progress") = false,
        py::arg("backend") = "sim", py::arg("force") = false,
        "ivmc::experiment::run_sweep of a canonical scenario (with `sets` applied first) on "
        "`backend` into out_dir (results.csv, meta.json); returns the runs made. `force` starts "
        "over in an out_dir another scenario, backend or version made.");
  m.def("summarize", &summarize, py::arg("out_dir"),
        "The summary of an output directory (ivmc summarize): its parameter keys and, per point, "
        "{'point', 'values', 'seeds', 'metrics': [(name, n, mean, ci95)]}.");
  m.def("read_results", &ex::read_results, py::arg("csv_path"),
        "The rows of a results.csv as column -> text, sorted by point and seed.");
}
