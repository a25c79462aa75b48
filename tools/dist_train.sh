#!/usr/bin/env bash
# Multi-process training, as mmdet's dist_train.sh: bash tools/dist_train.sh CONFIG NPROC [args]
# Works on GPUs (NCCL) and, without CUDA, on CPU processes with the gloo backend.
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as in mmdet.
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi

PYTHONPATH="$ROOT:$PYTHONPATH" \
"$PYTHON" -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$ROOT/tools/train.py" \
    $CONFIG \
    --launcher pytorch ${@:3}
