"""What a config or override may set under `hydra:`, checked before Hydra acts on any of it.

Hydra builds `hydra.callbacks`, its launcher and sweeper, and the logging configuration from the
composed `hydra` node before fxflow's own checks of the job's config run, and `logging.config`
imports and calls whatever a `class` or `()` key names. So the `hydra` node is judged first,
from the composed (unresolved) values, by the same rules as every other `_target_`:

    problems = hydra_problems(OmegaConf.to_container(cfg.hydra, resolve=False), TargetPolicy())

- `hydra.callbacks.NAME`: fxflow's own callbacks only (`TargetPolicy.hydra_callback`), without
  instantiate options or nested `_target_`s;
- `hydra.launcher` / `hydra.sweeper`: a `_target_` in Hydra's own plugins or the installed
  `hydra_plugins` namespace (Hydra then accepts only registered plugin classes), no nested `_target_`;
  a launcher's values never hold a line break (submitit writes them into a shell script), its
  `setup` shell lines run only if the user's pyproject.toml trusts each one (`[tool.fxflow]
  launcher_setup`), `additional_parameters` ask the scheduler for resources only (never files,
  environment or commands), and `submitit_folder` stays inside the sweep folder;
- `hydra.job_logging` / `hydra.hydra_logging`: handler and formatter classes (`class`, or the
  factory `()`) from logging's own (and colorlog's formatter), streams stdout/stderr, log files
  inside the run folder only;
- names that become paths (`hydra.job.name`, `hydra.output_subdir`, `hydra.sweep.subdir`) stay
  inside the run folder; `hydra.job.env_set` sets thread and device variables only (never
  PYTHONPATH, LD_PRELOAD or FXFLOW_TRUSTED_PACKAGES); `hydra.searchpath` lists folders only;
- any other `_target_` under `hydra` is refused.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, Mapping

from fxflow.config.errors import ConfigProblem, join_path
from fxflow.config.targets import DOTTED, TargetPolicy, TargetRefused

PLUGIN_PREFIXES = ("hydra._internal.core_plugins.", "hydra_plugins.")
LOGGING_CLASSES = frozenset({"logging.StreamHandler", "logging.FileHandler", "logging.NullHandler",
                             "logging.Formatter", "colorlog.ColoredFormatter"})
STREAMS = frozenset({"ext://sys.stdout", "ext://sys.stderr"})
LOG_FOLDER = "${hydra.runtime.output_dir}/"
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
ENV_NAME = re.compile(r"^(OMP|MKL|KMP|OPENBLAS|CUDA|CUBLAS|CUDNN|NCCL|TORCH|PYTORCH)_[A-Z0-9_]+$")


def hydra_problems(hydra: Mapping[str, Any], policy: TargetPolicy,
                   trusted_setup: tuple[str, ...] = ()) -> list[ConfigProblem]:
    """Every problem with the `hydra` node (plain, unresolved data), each with its dotted key.
    `trusted_setup`: the launcher setup lines the user's pyproject.toml trusts (fxflow.config.trust)."""
    problems: list[ConfigProblem] = []
    problems += _callbacks(hydra.get("callbacks"), policy)
    for section in ("launcher", "sweeper"):
        problems += _plugin(hydra.get(section), f"hydra.{section}")
    problems += launcher_problems(hydra.get("launcher"), trusted_setup)
    for section in ("job_logging", "hydra_logging"):
        problems += _logging(hydra.get(section), f"hydra.{section}")
    job = hydra.get("job") if isinstance(hydra.get("job"), Mapping) else {}
    problems += _name(job.get("name"), "hydra.job.name", "a plain name such as fxflow")
    problems += _name(hydra.get("output_subdir"), "hydra.output_subdir", "a plain folder name such as .hydra, or null")
    sweep = hydra.get("sweep") if isinstance(hydra.get("sweep"), Mapping) else {}
    subdir = sweep.get("subdir")
    if isinstance(subdir, str) and (subdir.startswith(("/", "\\")) or ".." in subdir):
        problems.append(ConfigProblem("hydra.sweep.subdir", "leaves the sweep folder", subdir,
                                "a folder inside it, such as ${hydra.job.num}"))
    env = job.get("env_set") if isinstance(job.get("env_set"), Mapping) else {}
    for name in env:
        if not ENV_NAME.fullmatch(str(name)):
            problems.append(ConfigProblem(f"hydra.job.env_set.{name}", "is not a variable a config may set: it could "
                                    "change what code runs or what is trusted", None,
                                    "thread and device variables (OMP_*, MKL_*, CUDA_*, NCCL_*, TORCH_*)"))
    problems += searchpath_problems(hydra.get("searchpath"))
    judged = ("hydra.callbacks.", "hydra.launcher", "hydra.sweeper")
    for path in _target_paths(hydra, "hydra"):
        if not path.startswith(judged):
            problems.append(ConfigProblem(join_path(path, "_target_"), "is not built by fxflow: under `hydra`, only "
                                    "fxflow's callbacks and Hydra's launcher and sweeper name a `_target_`",
                                    None, "remove it"))
    return problems


def searchpath_problems(searchpath: Any) -> list[ConfigProblem]:
    """`hydra.searchpath` lists folders only: Hydra imports a `pkg://` entry's package while it
    composes, so this is checked on the overrides and the primary config file before composing."""
    problems = []
    for index, entry in enumerate(searchpath if isinstance(searchpath, list) else [searchpath] if searchpath else []):
        if not (isinstance(entry, str) and entry.startswith("file://")):
            problems.append(ConfigProblem(f"hydra.searchpath.{index}", "is not a folder: a pkg:// entry imports a package",
                                    entry, "file://FOLDER, or --config-dir FOLDER"))
    return problems


GUARD_CALLBACK = ("fresh_run_dir", "fxflow.record.run_dir.FreshRunDir")  # keeps a run out of folders it does not own


def _callbacks(callbacks: Any, policy: TargetPolicy) -> list[ConfigProblem]:
    if callbacks is not None and not isinstance(callbacks, Mapping):
        return [ConfigProblem("hydra.callbacks", "must be a mapping of fxflow's callbacks", callbacks)]
    problems = []
    name, target = GUARD_CALLBACK
    guard = (callbacks or {}).get(name)
    if not (isinstance(guard, Mapping) and guard.get("_target_") == target):
        problems.append(ConfigProblem(f"hydra.callbacks.{name}", "cannot be removed or replaced: it refuses a run "
                                      "folder that holds anything but fxflow's own record, so no run overwrites "
                                      "a user's files", guard, f"{{_target_: {target}}}"))
    for name, entry in (callbacks or {}).items():
        path = f"hydra.callbacks.{name}"
        if entry is None:
            continue  # a callback switched off
        if not isinstance(entry, Mapping) or "_target_" not in entry:
            problems.append(ConfigProblem(path, "must be a mapping with a _target_ naming one of fxflow's callbacks", entry))
            continue
        try:
            policy.hydra_callback(entry["_target_"])
        except TargetRefused as exc:
            problems.append(ConfigProblem(f"{path}._target_", exc.message, entry["_target_"], exc.accepted))
        problems += _plain_arguments(entry, path)
    return problems


def _plugin(node: Any, path: str) -> list[ConfigProblem]:
    if not isinstance(node, Mapping):
        return []
    problems = []
    target = node.get("_target_")
    if target is not None and not (isinstance(target, str) and DOTTED.fullmatch(target)
                                   and target.startswith(PLUGIN_PREFIXES)):
        problems.append(ConfigProblem(f"{path}._target_", "is not a Hydra plugin", target,
                                "a launcher or sweeper from hydra or an installed hydra_plugins package, chosen "
                                f"as a group (e.g. hydra/{path.split('.')[-1]}=joblib)"))
    return problems + _plain_arguments(node, path)


# sbatch options that only ask the scheduler for resources, time and accounting. Others name files
# (--output, --error, --input, --chdir), the job's environment (--export, --export-file) or
# commands and images to run (--wrap, --container*, --bb*), so a config may not set them.
SCHEDULING_PARAMETERS = frozenset({
    "account", "begin", "constraint", "cores_per_socket", "cpus_per_gpu", "cpus_per_task", "deadline",
    "dependency", "distribution", "exclude", "exclusive", "gpus", "gpus_per_node", "gpus_per_socket",
    "gpus_per_task", "gres", "hint", "job_name", "licenses", "mail_type", "mem", "mem_per_cpu", "mem_per_gpu",
    "nice", "no_requeue", "nodelist", "nodes", "ntasks", "ntasks_per_core", "ntasks_per_gpu", "ntasks_per_node",
    "partition", "priority", "qos", "requeue", "reservation", "signal", "sockets_per_node", "switches",
    "threads_per_core", "time", "time_min", "tmp", "wckey"})
SWEEP_FOLDER = "${hydra.sweep.dir}/"


def launcher_problems(node: Any, trusted_setup: tuple[str, ...] = ()) -> list[ConfigProblem]:
    """What a cluster launcher (submitit's Slurm) would hand to a shell or write outside the sweep."""
    if not isinstance(node, Mapping):
        return []
    problems = [ConfigProblem(where, "holds a line break: the launcher writes this value into a shell "
                              "script, where a new line is a new command", value, "one line")
                for where, value in _strings(node, "hydra.launcher") if "\n" in value or "\r" in value]
    for key in ("setup", "teardown"):  # shell lines submitit runs before / after each job
        lines = node.get(key)
        for index, line in enumerate(lines if isinstance(lines, list) else [lines] if lines else []):
            if line not in trusted_setup:
                problems.append(ConfigProblem(f"hydra.launcher.{key}.{index}", "is a shell line the launcher runs "
                                              "beside each job, and no pyproject.toml trusts it", line,
                                              "the same line listed in [tool.fxflow] launcher_setup of the "
                                              "pyproject.toml at or above the folder you start fxflow in"))
    srun = node.get("srun_args")
    for index, arg in enumerate(srun if isinstance(srun, list) else [srun] if srun else []):
        name = str(arg).lstrip("-").split("=")[0].replace("-", "_")
        if name not in SCHEDULING_PARAMETERS:
            problems.append(ConfigProblem(f"hydra.launcher.srun_args.{index}", "is not a scheduling option: "
                                          "srun options can run programs (--prolog) or set the environment",
                                          arg, "--OPTION=VALUE for a scheduling option such as --cpus-per-task"))
    extra = node.get("additional_parameters")
    for key, value in (extra.items() if isinstance(extra, Mapping) else []):
        name = str(key).lstrip("-").replace("-", "_")
        if name not in SCHEDULING_PARAMETERS:
            problems.append(ConfigProblem(f"hydra.launcher.additional_parameters.{key}", "is not a scheduling "
                                          "option: it could name files, the job's environment or a command",
                                          value, ", ".join(sorted(SCHEDULING_PARAMETERS))))
        elif isinstance(value, (Mapping, list)):
            problems.append(ConfigProblem(f"hydra.launcher.additional_parameters.{key}", "must be a plain value",
                                          value, "a number or one-line string"))
    folder = node.get("submitit_folder")
    if folder is not None and not (isinstance(folder, str) and folder.startswith(SWEEP_FOLDER)
                                   and ".." not in folder):
        problems.append(ConfigProblem("hydra.launcher.submitit_folder", "writes the launcher's files outside "
                                      "the sweep folder", folder, SWEEP_FOLDER + ".submitit/%j, as written (unresolved)"))
    return problems


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, join_path(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, join_path(path, index))


def _plain_arguments(node: Mapping[str, Any], path: str) -> list[ConfigProblem]:
    """The keys beside a `_target_`: plain values, never instantiate options or nested targets."""
    problems = []
    for key, value in node.items():
        if key == "_target_":
            continue
        if str(key).startswith("_"):
            problems.append(ConfigProblem(join_path(path, key), "is an instantiate option, which a config may not set here"))
        for nested in _target_paths(value, join_path(path, key)):
            problems.append(ConfigProblem(join_path(nested, "_target_"), "would be built by Hydra; a config may not "
                                    "name one here", None, "a plain value"))
    return problems


def _logging(node: Any, path: str) -> Iterator[ConfigProblem]:
    """`logging.config.dictConfig` imports and calls what `class` and `()` name, and opens `filename`."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            where = join_path(path, key)
            if key == "()" and value not in LOGGING_CLASSES:
                yield ConfigProblem(where, "names a factory logging would call", value, ", ".join(sorted(LOGGING_CLASSES)))
            elif key == "class" and value not in LOGGING_CLASSES:
                yield ConfigProblem(where, "is not a logging class fxflow accepts", value, ", ".join(sorted(LOGGING_CLASSES)))
            elif key == "filename" and not _inside_run_folder(value):
                yield ConfigProblem(where, "writes a log outside the run folder", value,
                              LOG_FOLDER + "NAME.log, as written (unresolved)")
            else:
                yield from _logging(value, where)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _logging(item, join_path(path, index))
    elif isinstance(node, str) and node.startswith(("ext://", "cfg://")) and node not in STREAMS:
        yield ConfigProblem(path, "names an object for logging to fetch", node, ", ".join(sorted(STREAMS)))


def _inside_run_folder(value: Any) -> bool:
    if not isinstance(value, str) or not value.startswith(LOG_FOLDER):
        return False
    rest = value[len(LOG_FOLDER):]
    return bool(rest) and ".." not in rest and not rest.startswith("/")


def _name(value: Any, path: str, accepted: str) -> list[ConfigProblem]:
    if value is None or (isinstance(value, str) and SAFE_NAME.fullmatch(value) and value not in (".", "..")):
        return []
    return [ConfigProblem(path, "is not a plain name: it becomes part of a path inside the run folder", value, accepted)]


def _target_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, Mapping):
        if "_target_" in value:
            yield path
        for key, item in value.items():
            yield from _target_paths(item, join_path(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _target_paths(item, join_path(path, index))
