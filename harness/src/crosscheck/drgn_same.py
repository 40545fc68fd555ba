# What `kdrill inspect --bt --tasks` does, done by drgn with the kernel's debug vmlinux (drgn
# has no way without it: no types, so neither the crashed thread nor the task list).
# Usage: python drgn_same.py DUMP VMLINUX. Prints `pcs:` and the crashed thread's program
# counters (frames that are not inlined), then its stack trace, then `pid comm` per task.
import sys

import drgn
from drgn.helpers.linux.pid import for_each_task

prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
trace = prog.crashed_thread().stack_trace()
lines = ["pcs: " + " ".join(hex(f.pc) for f in trace if not f.is_inline), str(trace)]
for task in for_each_task(prog):
    lines.append(f"{task.pid.value_()} {task.comm.string_().decode()}")
print("\n".join(lines))
