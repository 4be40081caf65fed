#!/usr/bin/env bash
# Shared recipe helpers: logging, stage guards, .done markers, saving the command line.
# Source it from a recipe: . "$(dirname "$0")/../common/utils.sh"

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]:-main}) $*"
}

# run_stage N: true when stage N is inside [stage, stop_stage].
run_stage() {
  [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]
}

# A stage that finished leaves DIR/.done.NAME; a rerun skips it. Remove the marker to redo it.
is_done() { [ -f "$1/.done.$2" ]; }
mark_done() { mkdir -p "$1"; date '+%Y-%m-%d %H:%M:%S' > "$1/.done.$2"; }

# save_cmdline DIR ARGS...: append the command line (with a timestamp) to DIR/cmdline.txt
save_cmdline() {
  local dir=$1; shift
  mkdir -p "$dir"
  printf '%s %s' "$(date '+%Y-%m-%d %H:%M:%S')" "$0" >> "$dir/cmdline.txt"
  printf ' %q' "$@" >> "$dir/cmdline.txt"
  echo >> "$dir/cmdline.txt"
}
