# What `kdrill inspect --bt --tasks` does, done by drgn with the kernel's debug vmlinux (drgn
# has no way without it: no types, so neither the crashed thread nor the task list).
# Usage: python drgn_same.py DUMP VMLINUX [REGS]. Prints `pcs:` and the crashed thread's
# program counters (frames that are not inlined) and its stack trace, then `pid comm` per
# task; a page the dump lacks ends the task list with `tasks: partial: …`. When drgn cannot
# find the crashed thread (its task_struct is not in the dump), it unwinds from REGS, the
# crashed CPU's saved registers as `name=hex,…` in pt_regs names, and says `from: registers`.
import sys

import drgn
from drgn.helpers.linux.pid import for_each_task

prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
try:
    trace = prog.crashed_thread().stack_trace()
except drgn.FaultError as e:
    if len(sys.argv) < 4:
        raise
    regs = {k: int(v, 16) for k, v in (kv.split("=") for kv in sys.argv[3].split(","))}
    print(f"from: registers (crashed_thread: {e})")
    trace = prog.stack_trace(drgn.Object(prog, "struct pt_regs", value=regs))
print("pcs: " + " ".join(hex(f.pc) for f in trace if not f.is_inline))
print(str(trace), flush=True)
lines = []
try:
    for task in for_each_task(prog):
        lines.append(f"{task.pid.value_()} {task.comm.string_().decode()}")
except drgn.FaultError as e:
    lines.append(f"tasks: partial: {e}")
print("\n".join(lines))
