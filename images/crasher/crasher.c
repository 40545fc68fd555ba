// SPDX-License-Identifier: GPL-2.0
/*
 * kdrill crasher: crashes the kernel on request, so kdrill can prove that kdump captures every
 * kind of crash a real incident produces, not only `echo c > /proc/sysrq-trigger`.
 *
 * Loading it creates /proc/kdrill-crash (root-writable only). Writing one word to it:
 *
 *   oops        dereference NULL       -> "BUG: kernel NULL pointer dereference"
 *   bug         BUG()                  -> "kernel BUG at .../crasher.c:<line>!"
 *   panic       panic()                -> "Kernel panic - not syncing: kdrill crasher: requested panic"
 *   softlockup  spin with preemption off, interrupts on: the soft-lockup detector fires
 *               ("BUG: soft lockup - CPU#N stuck for ...") and panics with kernel.softlockup_panic=1
 *   hardlockup  spin with interrupts off in kdrill_hang_irqs_off(): a hung CPU that only an NMI
 *               reaches; the NMI's backtrace names that function
 *
 * Any other word fails the write with EINVAL. Whether an oops or BUG panics (and so reaches
 * kdump) is the guest's choice: kernel.panic_on_oops=1.
 *
 * Built by kdrill (harness/src/crasher.rs) with the host gcc against the guest kernel's own
 * Debian header packages; it must compile warning-free on Debian 6.1 and 6.12.
 */

#include <linux/bug.h>
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/irqflags.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/printk.h>
#include <linux/proc_fs.h>
#include <linux/string.h>
#include <linux/uaccess.h>

/* The control file, under /proc so it exists without mounting debugfs. */
#define KDRILL_PROC_NAME "kdrill-crash"

static struct proc_dir_entry *kdrill_entry;

/* Writes through a pointer the compiler cannot prove NULL, so the store is really emitted. */
static noinline void kdrill_oops(void)
{
	int *volatile ptr = NULL;

	*ptr = 1;
}

/* Preemption off, interrupts on: the watchdog's timer interrupt sees this CPU never schedule. */
static noinline void kdrill_spin_preempt_off(void)
{
	preempt_disable();
	for (;;)
		cpu_relax();
}

/* Interrupts off: nothing but an NMI reaches this CPU any more. Named so backtraces show it. */
static noinline void kdrill_hang_irqs_off(void)
{
	local_irq_disable();
	for (;;)
		cpu_relax();
}

static ssize_t kdrill_write(struct file *file, const char __user *ubuf,
			    size_t count, loff_t *pos)
{
	/* Room for the longest word ("softlockup", "hardlockup") and a newline. */
	char buf[16];
	char *word;

	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	/* `echo oops > /proc/kdrill-crash` writes "oops\n". */
	word = strim(buf);

	if (strcmp(word, "oops") == 0) {
		pr_emerg("kdrill crasher: oops (NULL pointer dereference)\n");
		kdrill_oops();
	} else if (strcmp(word, "bug") == 0) {
		pr_emerg("kdrill crasher: bug (BUG())\n");
		BUG();
	} else if (strcmp(word, "panic") == 0) {
		pr_emerg("kdrill crasher: panic\n");
		panic("kdrill crasher: requested panic");
	} else if (strcmp(word, "softlockup") == 0) {
		pr_emerg("kdrill crasher: softlockup (spinning with preemption off)\n");
		kdrill_spin_preempt_off();
	} else if (strcmp(word, "hardlockup") == 0) {
		pr_emerg("kdrill crasher: hardlockup (spinning with interrupts off)\n");
		kdrill_hang_irqs_off();
	} else {
		return -EINVAL;
	}
	/* Only an oops without panic_on_oops kills the writer and lands nowhere near here. */
	pr_emerg("kdrill crasher: %s should have crashed the kernel\n", word);
	return -EIO;
}

static const struct proc_ops kdrill_proc_ops = {
	.proc_write = kdrill_write,
};

static int __init kdrill_init(void)
{
	/* 0200: only root may write, nobody reads. */
	kdrill_entry = proc_create(KDRILL_PROC_NAME, 0200, NULL, &kdrill_proc_ops);
	if (!kdrill_entry)
		return -ENOMEM;
	pr_info("kdrill crasher: write oops|bug|panic|softlockup|hardlockup to /proc/%s\n",
		KDRILL_PROC_NAME);
	return 0;
}

static void __exit kdrill_exit(void)
{
	proc_remove(kdrill_entry);
}

module_init(kdrill_init);
module_exit(kdrill_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kdrill");
MODULE_DESCRIPTION("Crashes the kernel on request, to test kdump (kdrill)");
