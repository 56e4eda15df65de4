"""One process of a multi-device run: `python -m fer.training.rank RUN`, started by `fer.training.distributed.launch`.

It trains its shard of the run with the others (rank 0 writes the run folder). `@record` sends an
exception to torchrun's error file, so the launcher can say which rank failed and why.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

from torch.distributed.elastic.multiprocessing.errors import record

from fer.training.distributed import context_from_env
from fer.training.fit import train


@record
def main(argv: Optional[List[str]] = None) -> int:
    """Train the run folder named on the command line as this process's rank."""
    run_dir = Path((argv if argv is not None else sys.argv[1:])[0])
    train(run_dir=run_dir, dist_ctx=context_from_env())
    return 0


if __name__ == "__main__":
    sys.exit(main())
