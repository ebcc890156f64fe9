"""The background worker of the worker example: does a small job every half second and
writes a heartbeat the web service shows. On SIGTERM it finishes the job in hand and
exits, so a deploy never cuts a job in half."""

import json
import os
import signal
import tempfile
import time

STATE = os.path.join(
    tempfile.gettempdir(),
    "slipway-%s-%s-worker.json" % (os.environ.get("SLIPWAY_APP", "jobs"), os.environ.get("SLIPWAY_ENVIRONMENT", "local")),
)

stopping = False


def stop(signum, frame):
    global stopping
    stopping = True


def check():
    """`python3 worker.py --check`: healthy once a worker of this release has done a job in
    the last five seconds. Slipway runs it with the instance's variables."""
    try:
        with open(STATE) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return 1
    fresh = time.time() - state.get("at", 0) < 5
    return 0 if fresh and state.get("release") == os.environ.get("SLIPWAY_RELEASE") else 1


def main():
    signal.signal(signal.SIGTERM, stop)
    release = os.environ.get("SLIPWAY_RELEASE", "dev")
    print("worker of %s started (service %s)" % (release, os.environ.get("SLIPWAY_SERVICE")), flush=True)
    jobs = 0
    while not stopping:
        jobs += 1
        # Written to a temporary file and renamed, so the web service never reads half of it.
        partial = STATE + ".%d" % os.getpid()
        with open(partial, "w") as f:
            json.dump({"jobs": jobs, "pid": os.getpid(), "release": release, "at": time.time()}, f)
        os.replace(partial, STATE)
        print("job", jobs, "done", flush=True)
        time.sleep(0.5)
    print("SIGTERM: worker stopped after %d jobs" % jobs, flush=True)


if __name__ == "__main__":
    import sys

    if "--check" in sys.argv:
        sys.exit(check())
    main()
