#!/usr/bin/env bash
# One GPU-machine session: unpack the bundle (make bundle; pack/ carried), run every test, then the
# benchmarks and training runs named in STAGES. Logs go to $OUT (the device tool's output folder).
#   bash bench/gpu_session.sh "tests ops sac envs peers pendulum cheetah100k cheetah100k_ov"
set -u
stages=${1:-"tests ops sac envs"}
OUT=${OUT:-out}; mkdir -p "$OUT"
[ -d bundle ] || tar xzf pack/tandem-bundle.tar.gz
export LD_LIBRARY_PATH=$PWD/bundle/lib:${LD_LIBRARY_PATH:-}
T=bundle/bin/tandem
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee "$OUT/gpu.txt"
for s in $stages; do
  echo "=== stage $s ($(date -u +%H:%M:%S))"
  case $s in
    tests) bash tests/run_tests.sh bundle/tests > "$OUT/tests.log" 2>&1
           grep -vE '^   PASS' "$OUT/tests.log" | tail -40 ;;
    ops) $T bench ops --device cuda:0 --json "$OUT/ops.json" 2>&1 | tail -9 ;;
    sac) $T bench sac --device auto --json "$OUT/sac.json" 2>&1 | tail -8 ;;
    envs) $T bench envs --json "$OUT/envs.json" 2>&1 | tail -12 ;;
    peers) python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
             && PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 bench/peers/sb3_sac.py --device cuda 2>&1 | tail -3 ;;
    pendulum) $T train configs/sac_pendulum.cfg --quiet -s run_dir=\"/tmp/runs\" 2>&1 | tail -4
              cat /tmp/runs/sac_pendulum/0/eval.csv | tail -3 ;;
    cheetah100k) $T train configs/sac_half_cheetah.cfg --quiet -s total_steps=100000 -s run_dir=\"/tmp/runs\" \
                   -s checkpoint_every=0 2>&1 | tail -4
                 cp /tmp/runs/sac_half_cheetah/0/eval.csv "$OUT/cheetah100k_eval.csv"
                 cp /tmp/runs/sac_half_cheetah/0/summary.json "$OUT/cheetah100k_summary.json"; tail -3 "$OUT/cheetah100k_eval.csv" ;;
    cheetah100k_ov) $T train configs/sac_half_cheetah.cfg --quiet -s total_steps=100000 -s run_dir=\"/tmp/runs\" \
                   -s checkpoint_every=0 -s overlap_update=true -s name=\"cheetah_ov\" 2>&1 | tail -4
                 cp /tmp/runs/cheetah_ov/0/eval.csv "$OUT/cheetah100k_ov_eval.csv"
                 cp /tmp/runs/cheetah_ov/0/summary.json "$OUT/cheetah100k_ov_summary.json"; tail -3 "$OUT/cheetah100k_ov_eval.csv" ;;
    *) echo "unknown stage $s" ;;
  esac
done
