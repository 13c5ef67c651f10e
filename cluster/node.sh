#!/usr/bin/env bash
# What every reslab node runs, for both cluster configs (gpu.yaml on AWS, onprem.yaml on a lab's own
# machines): one source of truth, so the test that runs `ray up` on onprem.yaml proves gpu.yaml's commands.
#
#   bash ~/reslab/cluster/node.sh setup [--storage URI] [--shared-storage]
#                                       venv with the pinned set and the cluster extra; `ray submit` shells use it
#   bash ~/reslab/cluster/node.sh start-mlflow --backend-store-uri URI --artifacts-destination URI [--password-ssm NAME]
#                                       [--admin-password-ssm NAME]   MLflow on the head's 127.0.0.1, login required
#   bash ~/reslab/cluster/node.sh start-head                 Ray's head (dashboard, jobs), with the autoscaler ray up configured
#   bash ~/reslab/cluster/node.sh start-worker               join the head at $RAY_HEAD_IP (set by Ray's updater)
#   bash ~/reslab/cluster/node.sh stop-mlflow                stop the tracking server (ray down leaves it serving)
#   bash ~/reslab/cluster/node.sh db-password NAME           MLflow's database password from AWS SSM into ~/.pgpass
#
# Settings the node's environment may give (defaults in brackets): RESLAB_RAY_PORT [6379],
# RESLAB_MLFLOW_PORT [5000], RESLAB_DASHBOARD_PORT [8265], RESLAB_DASHBOARD_AGENT_PORT [52365] (the head's job agent:
# `ray job submit` answers "No available agent" when another Ray on the machine holds this port). RESLAB_NODE_REUSE_ENV=<a site-packages folder with the pinned set> makes
# `setup` link that environment instead of installing (how the tests run these commands in seconds).
#
# Values that study drivers need (the venv, RESLAB_STORAGE, MLFLOW_TRACKING_URI, RAY_ADDRESS) go into
# ~/.bashrc as lines ending in "# reslab", replaced on every run: `ray submit` (with or without --tmux) runs
# the study in a login shell that reads ~/.bashrc, and start-head loads them into Ray's own environment,
# which is where `ray job submit` runs a study's driver.
set -euo pipefail

RESLAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$HOME/venv"
RAY_PORT="${RESLAB_RAY_PORT:-6379}"
MLFLOW_PORT="${RESLAB_MLFLOW_PORT:-5000}"
DASHBOARD_PORT="${RESLAB_DASHBOARD_PORT:-8265}"
AGENT_PORT="${RESLAB_DASHBOARD_AGENT_PORT:-52365}"
MLFLOW_DIR="$HOME/reslab-mlflow"

remember() {  # remember NAME VALUE: export NAME=VALUE in every later login shell (one line, replaced)
  touch ~/.bashrc
  sed -i "/^export $1=.* # reslab\$/d" ~/.bashrc
  echo "export $1=$(printf '%q' "$2")  # reslab" >> ~/.bashrc
}

load_remembered() {  # the "# reslab" lines of ~/.bashrc, in this shell (however it was started)
  local remembered
  remembered="$(grep -E '^(export|source) .*  # reslab$' ~/.bashrc 2>/dev/null || true)"
  set +u  # the venv's activate script reads unset variables
  eval "$remembered"
  set -u
}

launcher() {  # launcher NAME MODULE CALL: a console script in the venv for a reused environment
  printf '#!%s\nimport sys\nfrom %s import %s\nsys.exit(%s())\n' "$VENV/bin/python" "$2" "$3" "$3" > "$VENV/bin/$1"
  chmod +x "$VENV/bin/$1"
}

setup() {
  local storage="" shared=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --storage) storage="$2"; shift 2 ;;
      --shared-storage) shared=1; shift ;;  # the --storage folder is NFS that every node mounts
      *) echo "node.sh setup: unknown option $1" >&2; exit 2 ;;
    esac
  done
  local python
  python="$(command -v python3.12 || command -v python3.11 || command -v python3)"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "node.sh: reslab's pinned set needs Python >= 3.11; $python is $("$python" --version 2>&1)" >&2
    exit 2
  fi
  if [ -n "${RESLAB_NODE_REUSE_ENV:-}" ]; then
    "$python" -m venv --without-pip "$VENV"
    local site
    site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
    printf '%s\n%s\n' "$RESLAB_DIR/platform" "$RESLAB_NODE_REUSE_ENV" > "$site/00-reslab-node.pth"
    launcher ray ray.scripts.scripts main
    launcher mlflow mlflow.cli cli
    launcher reslab reslab.cli main
  else
    "$python" -m venv "$VENV"
    "$VENV/bin/pip" install -q -c "$RESLAB_DIR/constraints.txt" -e "$RESLAB_DIR[cluster]"
  fi
  sed -i '/^source .*venv\/bin\/activate  # reslab$/d' ~/.bashrc 2>/dev/null || true
  echo "source $VENV/bin/activate  # reslab" >> ~/.bashrc
  if [ -n "$storage" ]; then remember RESLAB_STORAGE "$storage"; fi
  if [ -n "$shared" ]; then remember RESLAB_SHARED_STORAGE 1; fi
}

mlflow_pid() {  # the running tracking server's pid, if any
  local pid
  pid="$(cat "$MLFLOW_DIR/server.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

start_mlflow() {
  local backend="" artifacts="" password_ssm="" admin_ssm=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --backend-store-uri) backend="$2"; shift 2 ;;
      --artifacts-destination) artifacts="$2"; shift 2 ;;
      --password-ssm) password_ssm="$2"; shift 2 ;;  # the database password, from AWS SSM Parameter Store
      --admin-password-ssm) admin_ssm="$2"; shift 2 ;;  # the MLflow admin's password, from SSM too
      *) echo "node.sh start-mlflow: unknown option $1" >&2; exit 2 ;;
    esac
  done
  mkdir -p "$MLFLOW_DIR"
  chmod 700 "$MLFLOW_DIR"
  if [ -n "$password_ssm" ]; then db_password "$password_ssm"; fi
  mlflow_login "$admin_ssm"
  local uri="http://127.0.0.1:$MLFLOW_PORT"
  remember MLFLOW_TRACKING_URI "$uri"
  if [ -n "$(mlflow_pid)" ]; then return 0; fi
  # 127.0.0.1 only: the driver on this head is the only writer (trials on the workers never call MLflow), and
  # people reach it through ssh port forwarding (`ray attach CONFIG -p 5000`), so no firewall rule opens it.
  # MLflow's basic-auth app: every request but /health needs the login (its users in basic_auth.db).
  MLFLOW_AUTH_CONFIG_PATH="$MLFLOW_DIR/basic_auth.ini" MLFLOW_AUTH_ADMIN_PASSWORD="$(cat "$MLFLOW_DIR/admin-password")" \
    MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$MLFLOW_DIR/flask-secret")" setsid "$VENV/bin/mlflow" server --app-name basic-auth --host 127.0.0.1 --port "$MLFLOW_PORT" \
    --backend-store-uri "$backend" --artifacts-destination "$artifacts" > "$MLFLOW_DIR/server.log" 2>&1 < /dev/null &
  echo $! > "$MLFLOW_DIR/server.pid"
  for _ in $(seq 120); do
    if "$VENV/bin/python" -c "import urllib.request as u; u.urlopen('$uri/health', timeout=2)" 2>/dev/null; then
      return 0
    fi
    if [ -z "$(mlflow_pid)" ]; then
      echo "node.sh: the MLflow server exited; the end of $MLFLOW_DIR/server.log:" >&2
      tail -n 5 "$MLFLOW_DIR/server.log" >&2
      exit 1
    fi
    sleep 1
  done
  echo "node.sh: the MLflow server did not answer at $uri in 120 s; see $MLFLOW_DIR/server.log" >&2
  exit 1
}

ssm_parameter() {  # ssm_parameter NAME: a SecureString from AWS SSM Parameter Store (the node's IAM role reads it)
  "$VENV/bin/python" -c 'import sys, boto3
print(boto3.client("ssm").get_parameter(Name=sys.argv[1], WithDecryption=True)["Parameter"]["Value"])' "$1"
}

db_password() {  # db_password NAME: the database password from SSM into ~/.pgpass (mode 600), where libpq finds
  # it: never in a URI, the YAML or a process list
  local value
  value="$(ssm_parameter "$1")"
  value="${value//\\/\\\\}"
  (umask 077 && printf '*:*:*:*:%s\n' "${value//:/\\:}" > ~/.pgpass.new)
  mv ~/.pgpass.new ~/.pgpass
}

mlflow_login() {  # mlflow_login [SSM_NAME]: the MLflow admin's password, from SSM, else $RESLAB_MLFLOW_ADMIN_PASSWORD
  # (the head's environment), else made here once, kept in ~/reslab-mlflow/admin-password; the login also goes to
  # ~/.mlflow/credentials, where MLflow's clients on this head (the study drivers) find it. Both mode 600, never
  # in the YAML. The server creates the admin with it on its first start; later changes go through MLflow's API.
  local file="$MLFLOW_DIR/admin-password"
  (
    umask 077
    if [ -n "${1:-}" ]; then ssm_parameter "$1" > "$file"
    elif [ -n "${RESLAB_MLFLOW_ADMIN_PASSWORD:-}" ]; then printf '%s\n' "$RESLAB_MLFLOW_ADMIN_PASSWORD" > "$file"
    elif [ ! -s "$file" ]; then "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$file"
    fi
    if [ ! -s "$MLFLOW_DIR/flask-secret" ]; then  # the key of the login form's CSRF tokens: made once, kept
      "$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(32))' > "$MLFLOW_DIR/flask-secret"
    fi
    mkdir -p ~/.mlflow
    printf '[mlflow]\nmlflow_tracking_username = admin\nmlflow_tracking_password = %s\n' "$(cat "$file")" \
      > ~/.mlflow/credentials
    printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///%s/basic_auth.db\nadmin_username = admin\n%s\n' \
      "$MLFLOW_DIR" "authorization_function = mlflow.server.auth:authenticate_request_basic_auth" \
      > "$MLFLOW_DIR/basic_auth.ini"
  )
}

stop_mlflow() {
  local pid
  pid="$(mlflow_pid)"
  if [ -n "$pid" ]; then kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"; fi
  rm -f "$MLFLOW_DIR/server.pid"
}

start_head() {
  load_remembered  # Ray's environment is where `ray job submit` runs a study's driver: it needs them too
  "$VENV/bin/ray" stop
  "$VENV/bin/ray" start --head --port="$RAY_PORT" --autoscaling-config="$HOME/ray_bootstrap_config.yaml" \
    --dashboard-port="$DASHBOARD_PORT" --dashboard-agent-listen-port="$AGENT_PORT" --disable-usage-stats
  remember RAY_ADDRESS "127.0.0.1:$RAY_PORT"  # a study started on the head joins this cluster
}

start_worker() {
  "$VENV/bin/ray" stop
  "$VENV/bin/ray" start --address="$RAY_HEAD_IP:$RAY_PORT" --disable-usage-stats
}

command="${1:-}"
shift || true
case "$command" in
  setup) setup "$@" ;;
  start-mlflow) start_mlflow "$@" ;;
  stop-mlflow) stop_mlflow ;;
  db-password) db_password "$@" ;;
  start-head) start_head ;;
  start-worker) start_worker ;;
  *) echo "usage: node.sh setup|start-mlflow|stop-mlflow|db-password|start-head|start-worker [options]" >&2; exit 2 ;;
esac
