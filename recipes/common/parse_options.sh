#!/usr/bin/env bash
# Strict command-line option parsing for recipe scripts (Kaldi style). Source it after the defaults:
#
#   stage=0
#   chunk_ms=640
#   help_message="Usage: $0 [--stage N] [--chunk-ms MS]"
#   . ../common/parse_options.sh
#
# `--chunk-ms 640` and `--chunk-ms=640` set `chunk_ms`; the variable must already have a default, so an
# unknown option is an error (exit status 1), never silently ignored. `--help` prints $help_message and the
# options with their current values. Positional arguments are left in "$@".

__po_usage() {
  echo "${help_message:-Usage: $0 [options]}"
  if [ -n "${__po_vars:-}" ]; then
    echo "Options (current values):"
    for __v in ${__po_vars}; do
      printf '  --%-24s %s\n' "${__v//_/-}" "${!__v}"
    done
  fi
}

# Every variable set before this file was sourced is an option.
__po_vars=$(set -o posix; set | sed -n 's/^\([a-z][a-z0-9_]*\)=.*/\1/p' | tr '\n' ' ')
__po_vars=" ${__po_vars} "; __po_vars="${__po_vars// help_message / }"

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      __po_usage; exit 0 ;;
    --*=*)
      __po_name="${1%%=*}"; __po_value="${1#*=}"; shift ;;
    --*)
      __po_name="$1"
      if [ $# -lt 2 ]; then echo "$0: option $1 needs a value" >&2; exit 1; fi
      __po_value="$2"; shift 2 ;;
    *)
      break ;;
  esac
  __po_var="${__po_name#--}"; __po_var="${__po_var//-/_}"
  if ! [[ "$__po_var" =~ ^[a-z][a-z0-9_]*$ ]] || ! [[ " ${__po_vars} " == *" ${__po_var} "* ]]; then
    echo "$0: unknown option ${__po_name} (see $0 --help)" >&2
    exit 1
  fi
  printf -v "$__po_var" '%s' "$__po_value"
done
unset __po_name __po_value __po_var
true
