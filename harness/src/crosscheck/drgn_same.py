# What `kdrill inspect --bt --tasks` does, done by drgn with the kernel's debug vmlinux (drgn
# has no way without it: no types, so neither the crashed thread nor the task list).
# Usage: python drgn_same.py DUMP VMLINUX
import sys

import drgn
from drgn.helpers.linux.pid import for_each_task

prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
lines = [str(prog.crashed_thread().stack_trace())]
for task in for_each_task(prog):
    lines.append(f"{task.pid.value_()} {task.comm.string_().decode()}")
print("\n".join(lines))
