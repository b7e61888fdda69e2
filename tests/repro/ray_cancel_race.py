"""Why `fmnist-job train` does not ray.cancel its tasks on Ctrl-C / SIGTERM.

In Ray 2.60, ray.cancel on a task whose reply is just arriving crashes the driver:
"task_manager.cc: Check failed: it != submissible_tasks_.end() Tried to complete task
that was not pending", exit code 1. This loop cancels short tasks around the moment they
return; on this 2-core machine the driver died within 9-26 s in seven runs of seven.
Not collected by pytest. Run it after a Ray upgrade: if it prints "survived", the
cancel may come back (sweep._execute).

    .venv/bin/python tests/repro/ray_cancel_race.py [seconds]
"""

import random
import sys
import time

import ray

ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)


@ray.remote(num_cpus=1, max_retries=0)
def work(seconds):
    time.sleep(seconds)
    return 1


ray.get([work.remote(0) for _ in range(8)])  # workers up before the clock starts
start, cancelled = time.monotonic(), 0
while time.monotonic() - start < float(sys.argv[1] if len(sys.argv) > 1 else 120):
    refs = [work.remote(0.002) for _ in range(4)]
    time.sleep(random.uniform(0.0, 0.006))  # cancel around the moment they return
    for ref in refs:
        ray.cancel(ref)
    cancelled += len(refs)
    for ref in refs:
        try:
            ray.get(ref)
        except (ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError):
            pass
print(f"survived {cancelled} cancels", flush=True)
