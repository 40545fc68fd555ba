# kdrill's cross-check: drgn names addresses of a dump from the kernel's own kallsyms tables
# (no debuginfo). Usage: python drgn_symbols.py DUMP ADDR_HEX... ; prints JSON, one entry per
# address: {"addr", "name", "address", "size"} (name null when drgn has no symbol there).
import json
import sys

import drgn
from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.register_symbol_finder("vmlinux_kallsyms", load_vmlinux_kallsyms(prog), enable_index=0)
out = []
for a in sys.argv[2:]:
    try:
        s = prog.symbol(int(a, 16))
        out.append({"addr": a, "name": s.name, "address": s.address, "size": s.size})
    except LookupError:
        out.append({"addr": a, "name": None, "address": None, "size": None})
print(json.dumps({"drgn": drgn.__version__, "symbols": out}))
