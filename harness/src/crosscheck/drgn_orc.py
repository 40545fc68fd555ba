# kdrill's cross-check: drgn unwinds a stack with the kernel's built-in ORC tables, read from the
# dump's memory, and the kernel's own kallsyms (no debuginfo, so no types: the registers are
# given as a `struct pt_regs` made here, in the kernel's order).
# Usage: python drgn_orc.py DUMP REGS, REGS being `name=hex,…` in pt_regs names. Prints JSON:
# {"drgn", "frames": [{"pc", "sp", "interrupted", "name", "offset"}]} (name null without a symbol).
import json
import sys

import drgn
from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

NAMES = ["r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx",
         "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss"]

prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.register_symbol_finder("vmlinux_kallsyms", load_vmlinux_kallsyms(prog), enable_index=0)
# The vmlinux as drgn's main module, so that its built-in ORC (__start_orc_unwind…) is used.
kernel = prog.main_module("kernel", create=True)
kernel.address_range = (prog.symbol("_stext").address & ~0xFFFFF, prog.symbol("_end").address)
ulong = prog.int_type("unsigned long", 8, False)
pt_regs = prog.struct_type(
    "pt_regs", 8 * len(NAMES), [drgn.TypeMember(ulong, n, 64 * i) for i, n in enumerate(NAMES)]
)
regs = {k: int(v, 16) for k, v in (kv.split("=") for kv in sys.argv[2].split(","))}
frames = []
for f in prog.stack_trace(drgn.Object(prog, pt_regs, value=regs)):
    try:
        s = f.symbol()
        name, offset = s.name, f.pc - s.address
    except LookupError:
        name, offset = None, None
    frames.append(
        {"pc": f.pc, "sp": f.sp, "interrupted": f.interrupted, "name": name, "offset": offset}
    )
print(json.dumps({"drgn": drgn.__version__, "frames": frames}))
