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
    main()
