#!/bin/bash
# Queue the grid as a job array of SHARDS tasks on a shared results folder, and `pddlite report`
# after it (it starts once every task has succeeded):
#
#   cluster/slurm/submit.sh SHARDS RESULTS [pddlite replicate arguments]
#   cluster/slurm/submit.sh 8 /shared/pddlite-results --profile paper
#
# Without replicate arguments it runs the paper's grid: three datasets, PDD and the four trained
# baselines, ten repetitions, the paper profile. Extra sbatch options (partition, account) go in
# $PDDLITE_SBATCH_OPTIONS, e.g. PDDLITE_SBATCH_OPTIONS="--partition=gpu --account=lab".
set -euo pipefail
if (( $# < 2 )); then
    echo "usage: $0 SHARDS RESULTS [pddlite replicate arguments]" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
shards=$1 out=$2
shift 2
if (( $# == 0 )); then
    set -- --datasets mnist fashion-mnist cifar10 --methods pdd egbad ganomaly mcdd deepsvdd --reps 10 --profile paper
fi
# shellcheck disable=SC2086  # PDDLITE_SBATCH_OPTIONS holds several options
array=$(sbatch --parsable ${PDDLITE_SBATCH_OPTIONS:-} --array=1-"$shards" \
    --export=ALL,PDDLITE_SHARDS="$shards",PDDLITE_FIRST_TASK=1 \
    "$here/replicate-array.sbatch" --out "$out" "$@")
array=${array%%;*}
# shellcheck disable=SC2086
report=$(sbatch --parsable ${PDDLITE_SBATCH_OPTIONS:-} --dependency=afterok:"$array" "$here/report.sbatch" "$out")
echo "grid: job array ${array} (${shards} tasks, shard k = task k); report: job ${report%%;*}, after all of them succeed"
echo "progress at any time: pddlite replicate --out $out $* --dry-run"
