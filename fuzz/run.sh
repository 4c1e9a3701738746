#!/usr/bin/env bash
# Builds every fuzz target (cargo-fuzz, nightly toolchain) and runs each for SECONDS (default 20),
# one after another, starting from the committed seeds in fuzz/corpus/<target>/. Prints the
# executions of each run (libFuzzer's stat::number_of_executed_units) and exits non-zero, naming
# the targets, when a target fails to build, crashes (a panic is a failed assertion or a bug), times
# out or runs out of memory. The inputs that crashed are kept in fuzz/artifacts/<target>/.
#
#   bash fuzz/run.sh [SECONDS [TARGET...]]     (every target when none is named)
#
# The build holds /tmp/gh-cargo.lock (GH_CARGO_LOCK to change it), so it never runs beside another
# build that takes the same lock; the runs do not hold it and run under `nice -n 19`, one process
# each (-jobs=1 -workers=1), two at a time (GH_FUZZ_PARALLEL), so they yield the CPU to builds.
#
# Sanitizer: none by default (GH_FUZZ_SANITIZER=address for AddressSanitizer). Every crate of ours
# forbids `unsafe`, so what these targets look for is a failed assertion or a panic, and without
# ASan's instrumentation of every memory access a run executes six to seven times as many inputs,
# and the build is shorter (measured in docs/SECURITY.md, "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

secs="${1:-20}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "usage: bash fuzz/run.sh [SECONDS [TARGET...]]   (SECONDS: a whole number, at least 1)" >&2
  exit 2
fi
shift $(($# > 0 ? 1 : 0))

die() { printf '\nFUZZ FAILED: %s\n' "$*" >&2; exit 1; }
lock="${GH_CARGO_LOCK:-/tmp/gh-cargo.lock}"
locked() { flock "$lock" "$@"; }

rustup toolchain list 2>/dev/null | grep -q '^nightly' \
  || die "no nightly toolchain (rustup toolchain install nightly); cargo-fuzz needs one"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "==> cargo-fuzz is not installed; installing it from crates.io"
  locked cargo install cargo-fuzz --locked || die "cargo-fuzz could not be installed"
fi

# GATEHOUSE_* variables are layers of the configuration that config_load loads: clear them.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^GATEHOUSE_' || true)

mapfile -t all_targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^gatehouse-fuzz$')
[ "${#all_targets[@]}" -gt 0 ] || die "no targets in fuzz/Cargo.toml"
if [ "$#" -gt 0 ]; then
  for t in "$@"; do
    printf '%s\n' "${all_targets[@]}" | grep -qx -- "$t" || die "no fuzz target named $t"
  done
  targets=("$@")
else
  targets=("${all_targets[@]}")
fi

# GH_FUZZ_TARGET_DIR: where the build goes (default fuzz/target). CI points it outside its
# fresh clone, so the dependencies' release builds carry over from one run to the next (cargo's
# fingerprints decide what is rebuilt; our own crates always are when they changed).
target_dir="${GH_FUZZ_TARGET_DIR:-$root/fuzz/target}"
export CARGO_TARGET_DIR="$target_dir"

sanitizer="${GH_FUZZ_SANITIZER:-none}"
# cargo-fuzz builds with one codegen unit by default; 16 (its own suggestion for faster builds)
# lets the two cores share each large crate's code generation. The runs are a little slower per
# input; GH_FUZZ_CODEGEN_UNITS=1 for long runs.
cgu="${GH_FUZZ_CODEGEN_UNITS:-16}"
echo "==> building ${#all_targets[@]} fuzz targets (sanitizer: $sanitizer)"
build_start=$SECONDS
if ! locked cargo +nightly fuzz build --sanitizer "$sanitizer" --codegen-units "$cgu"; then
  broken=()
  for t in "${all_targets[@]}"; do
    locked cargo +nightly fuzz build --sanitizer "$sanitizer" --codegen-units "$cgu" "$t" >/dev/null 2>&1 || broken+=("$t")
  done
  die "the fuzz targets do not build: ${broken[*]:-(all; see the errors above)}"
fi
echo "built in $((SECONDS - build_start)) s"

triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
bin_dir="$target_dir/$triple/release"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# Two runs at a time (GH_FUZZ_PARALLEL to change it): each is one process (-jobs=1 -workers=1)
# and runs its full SECONDS, so a machine with two cores finishes in half the wall time.
parallel="${GH_FUZZ_PARALLEL:-2}"
run_one() {
  local t="$1" log status execs
  mkdir -p "$scratch/$t/corpus" "fuzz/artifacts/$t"
  log="$scratch/$t/log"
  echo "==> $t: ${secs} s"
  # New inputs go to the scratch corpus (first directory); the seeds are only read.
  status=0
  (cd "$scratch/$t" && nice -n 19 "$bin_dir/$t" -jobs=1 -workers=1 \
    -max_total_time="$secs" -timeout=25 -print_final_stats=1 \
    -artifact_prefix="$root/fuzz/artifacts/$t/" \
    corpus "$root/fuzz/corpus/$t") >"$log" 2>&1 || status=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)"
  if [ "$status" -ne 0 ] || [ -z "$execs" ]; then
    { grep -m 1 -A 8 'panicked at' "$log" || true; echo '[...]'; tail -n 40 "$log"; } >&2
    echo "==> $t FAILED (exit $status); inputs that crashed: fuzz/artifacts/$t/" >&2
    printf '%-20s %8s s %14s  FAILED\n' "$t" "$secs" "${execs:-?}" > "$scratch/$t/result"
  else
    echo "$t: $execs executions"
    printf '%-20s %8s s %14s  ok\n' "$t" "$secs" "$execs" > "$scratch/$t/result"
  fi
}

for t in "${targets[@]}"; do
  [ -x "$bin_dir/$t" ] || die "$t: no binary at $bin_dir/$t after the build"
done
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$parallel" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
wait || true

failed=()
summary=()
for t in "${targets[@]}"; do
  line="$(cat "$scratch/$t/result" 2>/dev/null || printf '%-20s %8s s %14s  FAILED' "$t" "$secs" '?')"
  summary+=("$line")
  case "$line" in *FAILED) failed+=("$t") ;; esac
done

printf '\n%-20s %10s %14s  %s\n' target seconds executions result
printf '%s\n' "${summary[@]}"
[ "${#failed[@]}" -eq 0 ] || die "fuzz targets failed: ${failed[*]}"
echo "all ${#targets[@]} fuzz targets ran without a crash"
