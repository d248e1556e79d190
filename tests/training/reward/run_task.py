"""Runs the reward task in its own process, as the runner would: `python -m tests.training.reward.run_task
ARGS.json`. SIGTERM asks the task to stop at a checkpoint (exit 75); events go to a JSON-lines file the test reads
while the task runs. ("reward" may not be registered in the runner's catalog yet, hence this small driver.)"""

import json
import signal
import sys
from pathlib import Path

from tests.training.reward.helpers import make_context
from training.runner import EXIT_STOPPED, Stopped


def main(args_path: str) -> int:
    args = json.loads(Path(args_path).read_text())
    events = open(args["events"], "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    ctx = make_context(Path(args["tmp"]), args["config"], data=Path(args["data"]), base=Path(args["base"]))
    ctx._emit = lambda event: events.write(json.dumps(event) + "\n")
    signal.signal(signal.SIGTERM, lambda *_: ctx.request_stop())
    from training.tasks import reward

    try:
        result = reward.run(ctx)
    except Stopped:
        return EXIT_STOPPED
    events.write(json.dumps({"type": "result", "result": result}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
