#!/usr/bin/env python3
"""Checks the shipped deployment files under deploy/ against the server binary.

Every file parses and holds what the server needs; every stop timeout covers the shutdown
budget that `stellar-insights --print-shutdown-budget` prints for the settings that file
sets; probes, ports, users and variable names agree with the binary and with each other.
Usage: check_manifests.py ROOT BINARY. Prints one "ok   - ..." or "FAIL - ..." line per
check and "# ..." notes; exits 1 when any check failed.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT, BIN = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("ok   - " if ok else "FAIL - ") + name + (f" ({detail})" if detail else ""))
    if not ok:
        failures += 1
    return ok


def run_binary(env, *args):
    """The binary with exactly `env` (plus PATH) in an empty directory, so no .env is read.
    Returns the completed process and what it left in that directory."""
    with tempfile.TemporaryDirectory(prefix="si-deploy-") as cwd:
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        full.update(env)
        proc = subprocess.run([BIN, *args], env=full, cwd=cwd, capture_output=True,
                              text=True, timeout=30)
        return proc, sorted(os.listdir(cwd))


HELP = run_binary({}, "--help")[0].stdout
SETTINGS = set(re.findall(r"^  ([A-Z][A-Z0-9_]*) \(default:", HELP, re.M))
VERSION = run_binary({}, "--version")[0].stdout.split()[-1]
if not check("the binary lists its settings and version", len(SETTINGS) > 50 and VERSION,
             f"{len(SETTINGS)} settings, version {VERSION}"):
    sys.exit(1)


def known_names(names, what):
    unknown = sorted(set(names) - SETTINGS)
    check(f"{what}: every variable it sets is a server setting", not unknown,
          "unknown: " + ", ".join(unknown) if unknown else f"{len(set(names))} variables")


def effective_settings(env, what):
    """--check-config for `env`: the effective settings, or None (a failed check)."""
    proc, _ = run_binary(env, "--check-config")
    if not check(f"{what}: its settings pass --check-config", proc.returncode == 0,
                 proc.stderr.strip()[:300]):
        return None
    return json.loads(proc.stdout)


def shutdown_budget(env, what):
    proc, left = run_binary(env, "--print-shutdown-budget")
    if not check(f"{what}: --print-shutdown-budget exits 0", proc.returncode == 0,
                 proc.stderr.strip()[:300]):
        return None
    budget = json.loads(proc.stdout)
    check(f"{what}: --print-shutdown-budget starts nothing", not left,
          f"left {left}" if left else "no file created")
    check(f"{what}: critical path shorter than SHUTDOWN_HARD_TIMEOUT",
          budget["critical_path_within_hard_timeout"],
          f"{budget['critical_path_ms']} ms < {budget['hard_timeout_ms']} ms")
    print(f"# {what}: critical path {budget['critical_path_ms']} ms, hard timeout "
          f"{budget['hard_timeout_ms']} ms, recommended grace "
          f"{budget['recommended_grace_seconds']} s")
    return budget


def dig(node, path, default=None):
    for key in path.split("."):
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return default
    return node


def rel(path):
    return os.path.relpath(path, ROOT)


# ---------------------------------------------------------------- systemd unit


def parse_unit(path):
    """A strict parse of a unit file: sections, Key=Value lines, backslash continuations.
    Returns ({section: {key: [values]}}, [errors])."""
    sections, errors, current = {}, [], None
    logical, buf, start = [], None, 0
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f.read().splitlines(), 1):
            text = raw.strip()
            if buf is None and (not text or text[0] in "#;"):
                continue
            if buf is None:
                buf, start = text, number
            else:
                buf += " " + text
            if buf.endswith("\\"):
                buf = buf[:-1].rstrip()
                continue
            logical.append((start, buf))
            buf = None
    if buf is not None:
        errors.append(f"line {start}: continuation at the end of the file")
    for number, text in logical:
        header = re.fullmatch(r"\[([A-Za-z]+)\]", text)
        if header:
            current = header.group(1)
            if current not in ("Unit", "Service", "Install"):
                errors.append(f"line {number}: unexpected section [{current}]")
            sections.setdefault(current, {})
            continue
        assignment = re.fullmatch(r"([A-Z][A-Za-z0-9]*)=(.*)", text)
        if not assignment or current is None:
            errors.append(f"line {number}: not 'Key=value' inside a section: {text!r}")
            continue
        sections[current].setdefault(assignment.group(1), []).append(assignment.group(2))
    return sections, errors


TIME_UNITS = {"us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1, "sec": 1,
              "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60,
              "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600}


def timespan_seconds(text):
    """systemd time span ("65", "65s", "1min 5s") in seconds, or None."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip())
    if not parts or re.sub(r"[\d.\sa-z]", "", text.strip()):
        return None
    total = 0.0
    for number, unit in parts:
        if (unit or "s") not in TIME_UNITS:
            return None
        total += float(number) * TIME_UNITS[unit or "s"]
    return total


def check_systemd():
    path = os.path.join(ROOT, "deploy/systemd/stellar-insights.service")
    what = rel(path)
    if not check(f"{what} exists", os.path.isfile(path)):
        return
    sections, errors = parse_unit(path)
    check(f"{what}: strict INI parse", not errors, "; ".join(errors[:3]))
    svc = sections.get("Service", {})

    def one(key):
        values = svc.get(key, [])
        return values[-1] if values else None

    check(f"{what}: Type=notify", one("Type") == "notify", f"Type={one('Type')}")
    check(f"{what}: NotifyAccess=main", one("NotifyAccess") == "main")
    exec_start = one("ExecStart") or ""
    check(f"{what}: ExecStart runs the server by absolute path",
          exec_start.startswith("/") and exec_start.split()[0].endswith("/stellar-insights"),
          exec_start)
    check(f"{what}: KillSignal=SIGTERM", one("KillSignal") == "SIGTERM")
    check(f"{what}: KillMode=mixed (SIGTERM to the server, SIGKILL to the rest at the end)",
          one("KillMode") == "mixed", f"KillMode={one('KillMode')}")
    check(f"{what}: Restart=on-failure", one("Restart") == "on-failure")
    check(f"{what}: no restart on a configuration error (exit 2)",
          "2" in " ".join(svc.get("RestartPreventExitStatus", [])).split())
    unit = sections.get("Unit", {})
    check(f"{what}: restart limits (StartLimitIntervalSec, StartLimitBurst)",
          "StartLimitIntervalSec" in unit and "StartLimitBurst" in unit)
    check(f"{what}: WantedBy=multi-user.target",
          "multi-user.target" in " ".join(sections.get("Install", {}).get("WantedBy", [])))
    env_files = svc.get("EnvironmentFile", [])
    check(f"{what}: EnvironmentFile= with an absolute path",
          bool(env_files) and all(f.lstrip("-").startswith("/") for f in env_files),
          ", ".join(env_files))

    env = {}
    for line in svc.get("Environment", []):
        for word in shlex.split(line):
            key, sep, value = word.partition("=")
            if check(f"{what}: Environment entry {key!r} is KEY=value", bool(sep)) and sep:
                env[key] = value
    known_names(env, what)
    settings = effective_settings(env, what)
    budget = shutdown_budget(env, what)
    stop = timespan_seconds(one("TimeoutStopSec") or "")
    if budget:
        check(f"{what}: TimeoutStopSec covers the recommended grace",
              stop is not None and stop >= budget["recommended_grace_seconds"],
              f"TimeoutStopSec={one('TimeoutStopSec')} >= "
              f"{budget['recommended_grace_seconds']} s")
        check(f"{what}: TimeoutStopSec exceeds the critical path",
              stop is not None and stop * 1000 > budget["critical_path_ms"],
              f"{stop} s > {budget['critical_path_ms']} ms")
    start = timespan_seconds(one("TimeoutStartSec") or "")
    check(f"{what}: TimeoutStartSec leaves room for migrations",
          start is not None and start >= 60, f"TimeoutStartSec={one('TimeoutStartSec')}")
    watchdog = one("WatchdogSec")
    if watchdog is not None:
        seconds = timespan_seconds(watchdog)
        check(f"{what}: WatchdogSec gives the liveness probe at least 1 s (a quarter)",
              seconds is not None and seconds >= 4, f"WatchdogSec={watchdog}")
    nofile = one("LimitNOFILE") or "0"
    if settings:
        need = settings["HTTP_MAX_CONNECTIONS"] + settings["WS_MAX_CONNECTIONS"] + 1024
        check(f"{what}: LimitNOFILE covers HTTP + WebSocket connections",
              nofile.isdigit() and int(nofile) >= need, f"{nofile} >= {need}")
    check(f"{what}: runs unprivileged (DynamicUser=yes or a User= other than root)",
          one("DynamicUser") == "yes" or (one("User") or "root") not in ("root", "0"))
    check(f"{what}: ProtectSystem=strict", one("ProtectSystem") == "strict")
    check(f"{what}: NoNewPrivileges=yes", one("NoNewPrivileges") == "yes")
    state = one("StateDirectory") or ""
    writable = [f"/var/lib/{d}/" for d in state.split()]
    writable += [p.lstrip("-").rstrip("/") + "/" for p in " ".join(
        svc.get("ReadWritePaths", [])).split()]
    check(f"{what}: StateDirectory= set", bool(state), state)
    if settings:
        url = settings["DATABASE_URL"]
        db = url[len("sqlite://"):] if url.startswith("sqlite://") else None
        if db is not None:
            check(f"{what}: the SQLite database is in a writable directory",
                  db.startswith("/") and any(db.startswith(w) for w in writable),
                  f"{db} under {writable}")
        report = settings.get("SHUTDOWN_REPORT_PATH")
        if report:
            check(f"{what}: SHUTDOWN_REPORT_PATH is in a writable directory",
                  any(report.startswith(w) for w in writable), report)
        check(f"{what}: WorkingDirectory is the state directory (no stray .env is read)",
              (one("WorkingDirectory") or "").rstrip("/") + "/" in writable,
              one("WorkingDirectory") or "unset")

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print(f"# {what}: systemd-analyze is not installed; strict INI parse only")
        return
    with tempfile.TemporaryDirectory(prefix="si-unit-") as tmp:
        # verify wants the ExecStart binary to exist: point it at the one under test.
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"^ExecStart=\S+", f"ExecStart={os.path.abspath(BIN)}", text, flags=re.M)
        copy = os.path.join(tmp, "stellar-insights.service")
        with open(copy, "w", encoding="utf-8") as f:
            f.write(text)
        proc = subprocess.run([analyze, "verify", copy], capture_output=True, text=True,
                              timeout=60)
        out = (proc.stdout + proc.stderr).strip()
        check(f"{what}: systemd-analyze verify reports nothing", proc.returncode == 0 and not out,
              out[:400])
        proc = subprocess.run([analyze, "security", "--offline=yes", copy], capture_output=True,
                              text=True, timeout=60)
        level = re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout + proc.stderr)
        check(f"{what}: systemd-analyze security exposure at most 2.0",
              level is not None and float(level.group(1)) <= 2.0,
              f"exposure {level.group(1) if level else 'not printed'}")


# ---------------------------------------------------------------- Dockerfile


def parse_dockerfile(path):
    """[(stage alias, base image, [(instruction, argument)])]; continuation lines joined."""
    stages, buf = [], None
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    logical = []
    for raw in lines:
        text = raw.strip()
        if buf is None and (not text or text.startswith("#")):
            continue
        if buf is not None and text.startswith("#"):
            continue
        buf = text if buf is None else buf + " " + text
        if buf.endswith("\\"):
            buf = buf[:-1].rstrip()
            continue
        logical.append(buf)
        buf = None
    for text in logical:
        instruction, _, argument = text.partition(" ")
        instruction = instruction.upper()
        argument = argument.strip()
        if instruction == "FROM":
            words = argument.split()
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            stages.append((alias, words[0], []))
        elif stages:
            stages[-1][2].append((instruction, argument))
        else:
            stages.append(("", "", [(instruction, argument)]))  # before any FROM: invalid
    return stages


def dockerignore_patterns(path):
    patterns = []
    with open(path, encoding="utf-8") as f:
        for raw in f.read().splitlines():
            text = raw.strip()
            if text and not text.startswith("#"):
                patterns.append(text.strip("/"))
    return patterns


def pattern_regex(pattern):
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(patterns, path):
    """Docker's rule: a path is out of the context if it or a parent directory matches."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    return any(pattern_regex(p).fullmatch(prefix) for p in patterns for prefix in prefixes)


def check_docker(deployment_uid):
    path = os.path.join(ROOT, "deploy/docker/Dockerfile")
    what = rel(path)
    if not check(f"{what} exists", os.path.isfile(path)):
        return None
    stages = parse_dockerfile(path)
    check(f"{what}: every instruction belongs to a stage", all(s[1] for s in stages))
    check(f"{what}: multi-stage (build, then runtime)", len(stages) >= 2, f"{len(stages)} stages")
    check(f"{what}: every stage is Debian bookworm",
          all(s[1].startswith("debian:bookworm") for s in stages),
          ", ".join(s[1] for s in stages))
    build = stages[0][2]
    runs = " ".join(a for i, a in build if i == "RUN")
    check(f"{what}: the build stage installs with si_install_deps", "si_install_deps" in runs)
    check(f"{what}: the build stage builds Release with si_build",
          re.search(r"si_build\s+\S+\s+Release", runs) is not None)
    check(f"{what}: the runtime packages come from deploy/docker/runtime-packages.sh",
          "deploy/docker/runtime-packages.sh" in runs)
    final = stages[-1][2]
    keys = [i for i, _ in final]
    last = {i: a for i, a in final}
    entry = last.get("ENTRYPOINT", "")
    try:
        entry_argv = json.loads(entry)
    except json.JSONDecodeError:
        entry_argv = None
    check(f"{what}: exec-form ENTRYPOINT (the server is PID 1 and gets SIGTERM)",
          isinstance(entry_argv, list) and entry_argv and all(isinstance(a, str)
                                                              for a in entry_argv), entry)
    copies = [a.split()[-1] for i, a in final if i == "COPY" and a.startswith("--from=")]
    check(f"{what}: ENTRYPOINT runs the binary the runtime stage copies",
          bool(entry_argv) and entry_argv[0] in copies, f"{entry_argv} vs {copies}")
    check(f"{what}: no shell-form CMD", all(a.startswith("[") for i, a in final if i == "CMD"))
    check(f"{what}: STOPSIGNAL SIGTERM", last.get("STOPSIGNAL") == "SIGTERM")
    user = last.get("USER", "root").split(":")[0]
    check(f"{what}: runs as a numeric non-root user", user.isdigit() and user != "0",
          f"USER {last.get('USER')}")
    if deployment_uid is not None:
        check(f"{what}: USER matches the Deployment's runAsUser", user == str(deployment_uid),
              f"{user} vs {deployment_uid}")
    check(f"{what}: USER comes after every RUN of the runtime stage",
          "USER" in keys and all(n < keys.index("USER") for n, k in enumerate(keys)
                                 if k == "RUN"))
    env = {}
    for instruction, argument in final:
        if instruction == "ENV":
            for word in shlex.split(argument):
                key, sep, value = word.partition("=")
                if sep:
                    env[key] = value
    known_names(env, what)
    effective_settings(env, what)
    check(f"{what}: EXPOSE is the PORT it sets", last.get("EXPOSE", "").split("/")[0]
          == env.get("PORT"), f"EXPOSE {last.get('EXPOSE')}, PORT {env.get('PORT')}")
    linked = subprocess.run(["ldd", BIN], capture_output=True, text=True, timeout=60).stdout
    sanitizer = next((lib for lib in ("libtsan", "libasan", "libubsan") if lib in linked), None)
    if sanitizer:
        # scripts/test --sanitize=...: the binary links the sanitizer runtime (and, for
        # thread, a CAF built for it), which no image ships; the release binary is checked.
        print(f"# {what}: runtime packages not checked: {BIN} is a sanitizer build "
              f"({sanitizer})")
    else:
        proc = subprocess.run([os.path.join(ROOT, "deploy/docker/runtime-packages.sh"), BIN],
                              capture_output=True, text=True, timeout=60)
        packages = proc.stdout.split()
        check(f"{what}: runtime-packages.sh names the packages of the binary's libraries",
              proc.returncode == 0 and packages, proc.stderr.strip()[:300] or " ".join(packages))
        missing = [p for p in packages if subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True
        ).stdout.strip() != "install ok installed"]
        check(f"{what}: those packages are real (installed here)", not missing,
              "missing: " + " ".join(missing) if missing else f"{len(packages)} packages")

    ignore = os.path.join(ROOT, ".dockerignore")
    if check(".dockerignore exists", os.path.isfile(ignore)):
        patterns = dockerignore_patterns(ignore)
        trees = [e for e in os.listdir(ROOT) if e.startswith("build")] + ["build/h-ws", "build-x"]
        for excluded in sorted(set(trees)) + [".git", "data", "tests/ws_e2e/node_modules",
                                              "si.db", "data/stellar-insights.db", ".env"]:
            check(f".dockerignore excludes {excluded}", ignored(patterns, excluded))
        for needed in ["CMakeLists.txt", "main.cpp", "scripts/lib/common.sh",
                       "deploy/docker/runtime-packages.sh", "tests/catch_main.cpp",
                       "tools/horizon_sim", "net/sd_notify.cpp"]:
            check(f".dockerignore keeps {needed}", not ignored(patterns, needed))
    return stages[-1][1]


# ---------------------------------------------------------------- Kubernetes


def check_kubernetes():
    """Returns the Deployment's runAsUser (for the Dockerfile's USER check)."""
    directory = os.path.join(ROOT, "deploy/kubernetes")
    files = sorted(f for f in os.listdir(directory) if f.endswith((".yaml", ".yml")))
    docs = []
    for name in files:
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as f:
                loaded = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            check(f"{rel(path)} parses", False, str(e).replace("\n", " ")[:300])
            continue
        check(f"{rel(path)} parses", bool(loaded), f"{len(loaded)} document(s)")
        for d in loaded:
            ok = isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and (
                d["kind"] == "Kustomization" or dig(d, "metadata.name"))
            check(f"{rel(path)}: {dig(d, 'kind')} has apiVersion, kind and metadata.name",
                  bool(ok))
            if ok:
                docs.append((name, d))

    def of_kind(kind):
        return [(n, d) for n, d in docs if d["kind"] == kind]

    kustomizations = of_kind("Kustomization")
    if check("deploy/kubernetes: one kustomization", len(kustomizations) == 1):
        listed = set(kustomizations[0][1].get("resources", []))
        others = set(files) - {kustomizations[0][0]}
        check("deploy/kubernetes: the kustomization lists every manifest", listed == others,
              f"listed {sorted(listed)}, files {sorted(others)}")
    deployments = of_kind("Deployment")
    if not check("deploy/kubernetes: one Deployment", len(deployments) == 1):
        return None
    dname, dep = deployments[0]
    what = f"deploy/kubernetes/{dname}"
    spec = dep.get("spec", {})
    pod = dig(spec, "template.spec", {})
    labels = dig(spec, "template.metadata.labels", {})
    selector = dig(spec, "selector.matchLabels", {})

    def selects_pods(sel):
        """A non-empty selector every label of which the Deployment's pods carry."""
        return bool(sel) and all(labels.get(k) == v for k, v in sel.items())

    check(f"{what}: selector matches the pod labels", selects_pods(selector))
    replicas = spec.get("replicas", 1)
    check(f"{what}: at least 2 replicas", isinstance(replicas, int) and replicas >= 2,
          f"replicas {replicas}")
    check(f"{what}: RollingUpdate with maxUnavailable 0, maxSurge 1",
          dig(spec, "strategy.type") == "RollingUpdate"
          and dig(spec, "strategy.rollingUpdate.maxUnavailable") == 0
          and dig(spec, "strategy.rollingUpdate.maxSurge") == 1)
    containers = pod.get("containers", [])
    if not check(f"{what}: one container", len(containers) == 1):
        return None
    c = containers[0]
    check(f"{what}: image tag is the server version ({VERSION})",
          str(c.get("image", "")).rsplit(":", 1)[-1] == VERSION, c.get("image"))

    configmaps = {d["metadata"]["name"]: (n, d) for n, d in of_kind("ConfigMap")}
    env, names, secrets = {}, [], set()
    for source in c.get("envFrom", []):
        ref = dig(source, "configMapRef.name")
        if not check(f"{what}: envFrom ConfigMap {ref!r} is shipped", ref in configmaps):
            continue
        cname, cm = configmaps[ref]
        data = cm.get("data", {})
        check(f"deploy/kubernetes/{cname}: every value is a string",
              all(isinstance(v, str) for v in data.values()),
              ", ".join(k for k, v in data.items() if not isinstance(v, str)))
        env.update({k: str(v) for k, v in data.items()})
        names += list(data)
    for item in c.get("env", []):
        names.append(item.get("name"))
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif dig(item, "valueFrom.secretKeyRef"):
            secrets.add(dig(item, "valueFrom.secretKeyRef.name"))
            check(f"{what}: secret {item['name']} uses the key of the same name",
                  dig(item, "valueFrom.secretKeyRef.key") == item["name"])
    known_names(names, what)
    check(f"{what}: every secret comes from one Secret", len(secrets) <= 1, str(secrets))
    required = {i["name"] for i in c.get("env", [])
                if dig(i, "valueFrom.secretKeyRef") and not dig(i, "valueFrom.secretKeyRef.optional")}
    check(f"{what}: DATABASE_URL is required from the Secret", "DATABASE_URL" in required)
    if replicas > 1:
        check(f"{what}: replicas share Redis (REDIS_URL required)", "REDIS_URL" in required)
    for threads in ("HTTP_THREADS", "ACTOR_THREADS"):
        check(f"{what}: {threads} is bounded (not every core of the node)",
              env.get(threads, "0").isdigit() and int(env.get(threads, "0")) > 0,
              f"{threads}={env.get(threads)}")
    settings = effective_settings(env, what)
    budget = shutdown_budget(env, what)

    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    port = settings["PORT"] if settings else None
    check(f"{what}: container port 'http' is the server's PORT", ports.get("http") == port,
          f"{ports.get('http')} vs PORT {port}")

    def probe(kind, path):
        p = c.get(kind)
        if not check(f"{what}: {kind} present", isinstance(p, dict)):
            return None
        target = dig(p, "httpGet.port")
        check(f"{what}: {kind} GET {path} on the server's port",
              dig(p, "httpGet.path") == path and (target == "http" or target == port),
              f"{dig(p, 'httpGet.path')} port {target}")
        return p

    probe("readinessProbe", "/health/ready")
    probe("livenessProbe", "/health")
    startup = probe("startupProbe", "/health")
    if startup:
        window = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        check(f"{what}: startupProbe allows a minute or more for migrations", window >= 60,
              f"{window} s")

    command = dig(c, "lifecycle.preStop.exec.command") or []
    sleep = None
    if (len(command) == 2 and os.path.basename(str(command[0])) == "sleep"
            and str(command[1]).isdigit()):
        sleep = int(command[1])
    check(f"{what}: preStop sleeps a whole number of seconds", sleep is not None, str(command))
    grace = pod.get("terminationGracePeriodSeconds")
    if budget and sleep is not None:
        need = sleep + budget["recommended_grace_seconds"]
        check(f"{what}: terminationGracePeriodSeconds covers preStop + recommended grace",
              isinstance(grace, int) and grace >= need,
              f"{grace} >= {sleep} + {budget['recommended_grace_seconds']}")
        check(f"{what}: terminationGracePeriodSeconds exceeds preStop + critical path",
              isinstance(grace, int) and grace * 1000 > sleep * 1000 + budget["critical_path_ms"],
              f"{grace} s > {sleep} s + {budget['critical_path_ms']} ms")

    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    uid = psc.get("runAsUser", csc.get("runAsUser"))
    check(f"{what}: runs as a non-root user", psc.get("runAsNonRoot") is True
          and isinstance(uid, int) and uid != 0, f"runAsUser {uid}")
    check(f"{what}: no privilege escalation, read-only root, no capabilities",
          csc.get("allowPrivilegeEscalation") is False and csc.get("readOnlyRootFilesystem")
          is True and dig(csc, "capabilities.drop") == ["ALL"])
    check(f"{what}: seccomp RuntimeDefault", dig(psc, "seccompProfile.type") == "RuntimeDefault")
    check(f"{what}: CPU and memory requests, memory limit",
          all(dig(c, k) for k in ("resources.requests.cpu", "resources.requests.memory",
                                  "resources.limits.memory")))

    services = of_kind("Service")
    if check("deploy/kubernetes: one Service", len(services) == 1):
        sname, svc = services[0]
        ssel = dig(svc, "spec.selector", {})
        check(f"deploy/kubernetes/{sname}: selects the Deployment's pods", selects_pods(ssel))
        targets = [p.get("targetPort") for p in dig(svc, "spec.ports", [])]
        check(f"deploy/kubernetes/{sname}: targets the container port 'http'",
              bool(targets) and all(t in ("http", port) for t in targets), str(targets))
    pdbs = of_kind("PodDisruptionBudget")
    if check("deploy/kubernetes: one PodDisruptionBudget", len(pdbs) == 1):
        pname, pdb = pdbs[0]
        psel = dig(pdb, "spec.selector.matchLabels", {})
        check(f"deploy/kubernetes/{pname}: selects the Deployment's pods", selects_pods(psel))
        max_unavailable = dig(pdb, "spec.maxUnavailable")
        min_available = dig(pdb, "spec.minAvailable")
        check(f"deploy/kubernetes/{pname}: lets one pod go at a time, never all",
              (max_unavailable == 1) or (isinstance(min_available, int)
                                         and 0 < min_available < replicas),
              f"maxUnavailable {max_unavailable}, minAvailable {min_available}")
    return uid, sleep


k8s = check_kubernetes()
runtime_base = check_docker(k8s[0] if k8s else None)
if k8s and k8s[1] is not None and runtime_base is not None:
    # `sleep` comes with Debian's coreutils; a distroless or scratch image has none.
    check("deploy: the preStop `sleep` exists in the runtime image",
          runtime_base.startswith("debian:"), runtime_base)
check_systemd()
sys.exit(1 if failures else 0)
