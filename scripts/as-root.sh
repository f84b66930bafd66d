# Sourced by the scripts that install system packages: `as_root <command...>` runs the
# command as root (directly when already root, else through sudo), or stops the script
# saying what it needed.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "$(basename "$0"): need root (or sudo) to run: $*" >&2
    exit 1
  fi
}
