// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers for the secretmemfd module. Each wraps one static inline, macro
 * or C-only interface that the Rust kernel crate does not bind.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/anon_inodes.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/error-injection.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/memcontrol.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/notifier.h>
#include <linux/sched/signal.h>
#include <linux/sched/user.h>
#include <linux/set_memory.h>
#include <linux/shrinker.h>
#ifdef SECRETMEM_HAVE_SYSCALL
#include <linux/secretmemfd_entry.h>
#endif
#include <linux/smp.h>
#include <linux/string.h>
#include <linux/suspend.h>
#include <linux/syscore_ops.h>
#include <linux/sysfs.h>
#include <linux/uaccess.h>
#include <asm/unistd.h>

#include "include/uapi/linux/secretmemfd.h"
#include "secretmem_shim.h"

/*
 * Fault injection: every kernel call whose failure the module handles, and
 * that failslab and fail_page_alloc cannot aim at, goes through one noinline
 * wrapper here marked ALLOW_ERROR_INJECTION, so that fail_function
 * (/sys/kernel/debug/fail_function/) can make it fail. The list, with what
 * each failure gives, is in Documentation/secretmem-abi.rst ("Failures").
 */

/* How pages leave the direct map on this kernel, chosen by Kbuild. */
MODULE_INFO(backend, SECRETMEM_BACKEND);

/* The same, in /sys/module/secretmemfd/parameters/backend for any user. */
static int backend_set(const char *val, const struct kernel_param *kp)
{
	return -EPERM;
}

static int backend_get(char *buffer, const struct kernel_param *kp)
{
	return sysfs_emit(buffer, "%s\n", SECRETMEM_BACKEND);
}

static const struct kernel_param_ops backend_ops = {
	.set = backend_set,
	.get = backend_get,
};
module_param_cb(backend, &backend_ops, NULL, 0444);
MODULE_PARM_DESC(backend,
		 "how pages leave the direct map: patched (kernel/patches/0001) or mce-helpers (read-only)");

/*
 * Whether new areas back each whole 2 MiB chunk with one block. Off by
 * default on the mce-helpers backend: there a block costs 512 direct-map
 * changes and all-CPU flushes at once, however little of it is touched.
 */
#ifdef SECRETMEM_BACKEND_PATCHED
static bool blocks = true;
#else
static bool blocks;
#endif
module_param(blocks, bool, 0644);
MODULE_PARM_DESC(blocks,
		 "Back each whole 2 MiB of a new area with one 2 MiB block (default: on with the patched backend, off with mce-helpers)");

bool secretmem_shim_blocks_enabled(void)
{
	return READ_ONCE(blocks);
}

#ifdef SECRETMEM_BACKEND_PATCHED
static unsigned long (*secretmem_pool_shrink)(unsigned long nr);

/*
 * Pages that leave the direct map together, with one TLB flush, for faults
 * that take single pages (page_pool.rs). Setting 0 turns the pool off and
 * gives its pages back.
 */
static unsigned int pool_batch = SECRETMEM_POOL_BATCH_MAX;

static int pool_batch_set(const char *val, const struct kernel_param *kp)
{
	unsigned long (*shrink)(unsigned long nr);
	int ret;

	ret = param_set_uint_minmax(val, kp, 0, SECRETMEM_POOL_BATCH_MAX);
	shrink = READ_ONCE(secretmem_pool_shrink);
	if (!ret && !READ_ONCE(pool_batch) && shrink)
		shrink(ULONG_MAX);
	return ret;
}

static const struct kernel_param_ops pool_batch_ops = {
	.set = pool_batch_set,
	.get = param_get_uint,
};
module_param_cb(pool_batch, &pool_batch_ops, &pool_batch, 0644);
MODULE_PARM_DESC(pool_batch,
		 "single pages taken out of the direct map per TLB flush, kept for later faults of the same memory cgroup (0 to 32, 0: none)");

unsigned int secretmem_shim_pool_batch(void)
{
	return READ_ONCE(pool_batch);
}
#endif

/* The system call number this module serves, or -1 when it serves none. */
static int syscall_nr = -1;
module_param(syscall_nr, int, 0444);
MODULE_PARM_DESC(syscall_nr, "secretmemfd() system call number served, -1 if none");

#ifdef CONFIG_FAULT_INJECTION
/* Fault injection for tests: fail the module init at this point, 0 for none. */
static int fail_init_at;
module_param(fail_init_at, int, 0400);
MODULE_PARM_DESC(fail_init_at,
		 "fault injection: fail init at point 1 (after the PM guard) or 2 (after the syscall entry)");
#endif

/* A group whose members may create uncached secret memory, or -1. */
static int uncached_gid = -1;
module_param(uncached_gid, int, 0644);
MODULE_PARM_DESC(uncached_gid,
		 "group (initial user namespace) allowed SECRETMEM_UNCACHED besides CAP_SYS_RAWIO, -1 for none");

noinline struct file *
secretmem_shim_file_create(const struct file_operations *fops,
			   const struct inode_operations *iops,
			   void *file_priv, void *inode_priv)
{
	struct file *file;
	struct inode *inode;

	file = anon_inode_create_getfile("[secretmem]", fops, file_priv, O_RDWR,
					 NULL);
	if (IS_ERR(file))
		return file;

	/* A private inode: behave as a regular file that ftruncate sizes. */
	inode = file_inode(file);
	inode->i_op = iops;
	inode->i_mode |= S_IFREG;
	inode->i_size = 0;
	inode->i_private = inode_priv;
	file->f_flags |= O_LARGEFILE;
	return file;
}
ALLOW_ERROR_INJECTION(secretmem_shim_file_create, ERRNO);

void secretmem_shim_inode_lock(struct inode *inode)
{
	inode_lock(inode);
}

void secretmem_shim_inode_unlock(struct inode *inode)
{
	inode_unlock(inode);
}

/* -ENOMEM if fail_init_at names @point, else 0. */
int secretmem_shim_init_fault(int point)
{
#ifdef CONFIG_FAULT_INJECTION
	if (point == fail_init_at) {
		pr_info("injected init failure at point %d\n", point);
		return -ENOMEM;
	}
#endif
	return 0;
}

/*
 * Opens the device node as the caller, for reading and writing: 0 if it opens
 * and is the device @devt, -EACCES if it is another one, or the open's error.
 *
 * The file is put synchronously, as close(2) does: this runs in the system
 * call with no lock held, so the release needs no task_work round trip on the
 * way back to user space (a few microseconds per create under TCG).
 */
noinline int secretmem_shim_may_open_device(dev_t devt)
{
	struct file *file = filp_open(SECRETMEM_DEVICE, O_RDWR, 0);
	struct inode *inode;
	int ret = 0;

	if (IS_ERR(file))
		return PTR_ERR(file);
	inode = file_inode(file);
	if (!S_ISCHR(inode->i_mode) || inode->i_rdev != devt)
		ret = -EACCES;
	__fput_sync(file);
	return ret;
}
ALLOW_ERROR_INJECTION(secretmem_shim_may_open_device, ERRNO);

dev_t secretmem_shim_misc_devt(const struct miscdevice *misc)
{
	return misc->this_device->devt;
}

/* CAP_SYS_RAWIO in the initial user namespace, not audited. */
bool secretmem_shim_capable_rawio(void)
{
	return capable_noaudit(CAP_SYS_RAWIO);
}

/* Whether the caller is in the group that uncached_gid names. */
bool secretmem_shim_in_uncached_group(void)
{
	int gid = READ_ONCE(uncached_gid);
	kgid_t kgid;

	if (gid < 0)
		return false;
	kgid = make_kgid(&init_user_ns, gid);
	return gid_valid(kgid) && in_group_p(kgid);
}

unsigned long secretmem_shim_page_to_pfn(struct page *page)
{
	return page_to_pfn(page);
}

struct page *secretmem_shim_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

unsigned long secretmem_shim_page_address(struct page *page)
{
	return (unsigned long)page_address(page);
}

/*
 * Zeroed pages for secret memory, charged to the caller's memory cgroup.
 * @spare pages are ones the caller can do without. A block (order > 0), whose
 * caller falls back to single pages, gets no retries and no warning. A page
 * pool batch's page past the one the fault needs gets no direct reclaim, in
 * the system or in the memory cgroup, and no memory reserves (an OOM victim's
 * included), for pages nobody asked for yet; it may wake kswapd, as any
 * allocation that cannot wait does.
 */
noinline struct page *secretmem_shim_alloc_pages(unsigned int order, bool spare)
{
	gfp_t gfp = GFP_KERNEL_ACCOUNT | __GFP_ZERO;

	if (spare && order)
		gfp |= __GFP_NORETRY | __GFP_NOWARN;
	else if (spare)
		gfp = (gfp | __GFP_NOWARN | __GFP_NOMEMALLOC) & ~__GFP_DIRECT_RECLAIM;
	return alloc_pages(gfp, order);
}
ALLOW_ERROR_INJECTION(secretmem_shim_alloc_pages, NULL);

#ifdef SECRETMEM_BACKEND_PATCHED
/* Takes @nr pages from @page out of the direct map; the caller flushes. */
noinline int secretmem_shim_direct_map_remove(struct page *page,
					      unsigned int nr)
{
	return set_direct_map_valid_noflush(page, nr, false);
}
ALLOW_ERROR_INJECTION(secretmem_shim_direct_map_remove, ERRNO);

/* Puts @nr pages from @page back into the direct map: no flush needed. */
noinline int secretmem_shim_direct_map_restore(struct page *page,
					       unsigned int nr)
{
	return set_direct_map_valid_noflush(page, nr, true);
}
ALLOW_ERROR_INJECTION(secretmem_shim_direct_map_restore, ERRNO);
#else
/* Takes page @pfn out of the direct map and flushes every CPU's TLB. */
noinline int secretmem_shim_direct_map_remove(unsigned long pfn)
{
	return set_mce_nospec(pfn);
}
ALLOW_ERROR_INJECTION(secretmem_shim_direct_map_remove, ERRNO);

/* Puts page @pfn back into the direct map. */
noinline int secretmem_shim_direct_map_restore(unsigned long pfn)
{
	return clear_mce_nospec(pfn);
}
ALLOW_ERROR_INJECTION(secretmem_shim_direct_map_restore, ERRNO);
#endif

/* Switches @nr pages from @page, in the direct map, to the UC- type. */
noinline int secretmem_shim_set_pages_uc(struct page *page, unsigned int nr)
{
	return set_pages_uc(page, nr);
}
ALLOW_ERROR_INJECTION(secretmem_shim_set_pages_uc, ERRNO);

/* Switches @nr pages from @page, in the direct map, back to write-back. */
noinline int secretmem_shim_set_pages_wb(struct page *page, unsigned int nr)
{
	return set_pages_wb(page, nr);
}
ALLOW_ERROR_INJECTION(secretmem_shim_set_pages_wb, ERRNO);

void secretmem_shim_free_pages(struct page *page, unsigned int order)
{
	__free_pages(page, order);
}

/*
 * Zeroes @nr pages from @page through the direct map in one call. memset,
 * not clear_pages(): under TCG clear_pages() zeroed 256 MiB of blocks in
 * 806 ms and memset in 88 ms (make bench, release kernel, same run).
 */
void secretmem_shim_zero_pages(struct page *page, unsigned int nr)
{
	memset(page_address(page), 0, (size_t)nr << PAGE_SHIFT);
}

#ifdef SECRETMEM_BACKEND_PATCHED
/*
 * Which memory cgroup __GFP_ACCOUNT charges the caller's allocations to, as a
 * cgroup id (never reused while the system runs); 0 without memory cgroups.
 */
u64 secretmem_shim_current_memcg_id(void)
{
	u64 id = 0;
#ifdef CONFIG_MEMCG
	struct mem_cgroup *memcg;

	if (mem_cgroup_disabled())
		return 0;
	/* As current_obj_cgroup() decides, for a task. */
	rcu_read_lock();
	memcg = current->active_memcg;
	if (!memcg && (!current->mm || (current->flags & PF_KTHREAD)))
		memcg = root_mem_cgroup;
	if (!memcg)
		memcg = mem_cgroup_from_task(current);
	if (memcg)
		id = cgroup_id(memcg->css.cgroup);
	rcu_read_unlock();
#endif
	return id;
}

static unsigned long (*secretmem_pool_count)(void);
static unsigned long (*secretmem_pool_scan)(unsigned long nr);
static struct shrinker *secretmem_shrinker;

static unsigned long secretmem_shrink_count(struct shrinker *shrinker,
					    struct shrink_control *sc)
{
	return secretmem_pool_count() ?: SHRINK_EMPTY;
}

static unsigned long secretmem_shrink_scan(struct shrinker *shrinker,
					   struct shrink_control *sc)
{
	return secretmem_pool_scan(sc->nr_to_scan) ?: SHRINK_STOP;
}

/*
 * Lets memory pressure (and drop_caches) take the pool's pages back, and
 * pool_batch=0 too. The shrinker's callbacks are set before it is registered
 * and stay valid until shrinker_free() has waited for the last call; the
 * parameter's setter may still call @shrink while the module exits, which
 * finds the pool empty or empties it.
 */
int secretmem_shim_pool_register(unsigned long (*count)(void),
				 unsigned long (*shrink)(unsigned long nr))
{
	secretmem_shrinker = shrinker_alloc(0, "secretmemfd-pool");
	if (!secretmem_shrinker)
		return -ENOMEM;
	secretmem_pool_count = count;
	secretmem_pool_scan = shrink;
	secretmem_shrinker->count_objects = secretmem_shrink_count;
	secretmem_shrinker->scan_objects = secretmem_shrink_scan;
	shrinker_register(secretmem_shrinker);
	WRITE_ONCE(secretmem_pool_shrink, shrink);
	return 0;
}

void secretmem_shim_pool_unregister(void)
{
	shrinker_free(secretmem_shrinker);
}
#endif

void secretmem_shim_vma_set_pfnmap(struct vm_area_struct *vma,
				   const struct vm_operations_struct *ops,
				   void *priv, bool uncached)
{
	/* Special PFN PTEs: every GUP path refuses them. */
	vm_flags_set(vma, VM_PFNMAP);
	vma->vm_ops = ops;
	vma->vm_private_data = priv;
	if (uncached)
		vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
}

struct user_struct *secretmem_shim_get_current_user(void)
{
	return get_current_user();
}

void secretmem_shim_put_user(struct user_struct *user)
{
	free_uid(user);
}

/* The current task's RLIMIT_MEMLOCK in pages; no capability lifts it. */
unsigned long secretmem_shim_memlock_limit_pages(void)
{
	return rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
}

/*
 * Charges user->locked_vm as io_uring and perf do: no mmap lock needed.
 * -EAGAIN over @limit, charging nothing. An errno rather than a bool so that
 * fail_function can fail it: it has no "return false" type.
 */
noinline int secretmem_shim_charge_locked(struct user_struct *user,
					  unsigned long pages,
					  unsigned long limit)
{
	unsigned long cur = atomic_long_read(&user->locked_vm);
	unsigned long new;

	do {
		new = cur + pages;
		if (new < cur || new > limit)
			return -EAGAIN;
	} while (!atomic_long_try_cmpxchg(&user->locked_vm, &cur, new));
	return 0;
}
ALLOW_ERROR_INJECTION(secretmem_shim_charge_locked, ERRNO);

void secretmem_shim_uncharge_locked(struct user_struct *user,
				    unsigned long pages)
{
	atomic_long_sub(pages, &user->locked_vm);
}

static int (*secretmem_pm_begin)(bool restore);
static void (*secretmem_pm_end)(void);
static int (*secretmem_pm_check_frozen)(void);

/* Hands the start and the end of a hibernation or a restore to the module. */
static int secretmem_pm_notify(struct notifier_block *nb, unsigned long action,
			       void *data)
{
	switch (action) {
	case PM_HIBERNATION_PREPARE:
		return notifier_from_errno(secretmem_pm_begin(false));
	case PM_RESTORE_PREPARE:
		return notifier_from_errno(secretmem_pm_begin(true));
	case PM_POST_HIBERNATION:
	case PM_POST_RESTORE:
		secretmem_pm_end();
		return NOTIFY_OK;
	}
	return NOTIFY_DONE;
}

static struct notifier_block secretmem_pm_nb = {
	.notifier_call = secretmem_pm_notify,
};

/* Runs once tasks are frozen, just before a hibernation image is made. */
static int secretmem_syscore_suspend(void *data)
{
	return secretmem_pm_check_frozen();
}

static const struct syscore_ops secretmem_syscore_ops = {
	.suspend = secretmem_syscore_suspend,
};

static struct syscore secretmem_syscore = {
	.ops = &secretmem_syscore_ops,
};

int secretmem_shim_pm_register(int (*begin)(bool restore), void (*end)(void),
			       int (*check_frozen)(void))
{
	int ret;

	secretmem_pm_begin = begin;
	secretmem_pm_end = end;
	secretmem_pm_check_frozen = check_frozen;
	ret = register_pm_notifier(&secretmem_pm_nb);
	if (ret)
		return ret;
	register_syscore(&secretmem_syscore);
	return 0;
}

void secretmem_shim_pm_unregister(void)
{
	unregister_syscore(&secretmem_syscore);
	unregister_pm_notifier(&secretmem_pm_nb);
}

#ifdef SECRETMEM_HAVE_SYSCALL
static struct secretmemfd_entry secretmem_entry = {
	.owner = THIS_MODULE,
};

int secretmem_shim_entry_register(long (*create)(unsigned int flags))
{
	int ret;

	secretmem_entry.create = create;
	ret = secretmemfd_entry_register(&secretmem_entry);
	if (!ret)
		syscall_nr = __NR_secretmemfd;
	return ret;
}

void secretmem_shim_entry_unregister(void)
{
	syscall_nr = -1;
	secretmemfd_entry_unregister(&secretmem_entry);
}
#else
/* Without kernel/patches/0002 there is no system call to serve. */
int secretmem_shim_entry_register(long (*create)(unsigned int flags))
{
	return 0;
}

void secretmem_shim_entry_unregister(void)
{
}
#endif

#ifndef SECRETMEM_KVM_PATCHED
/* Lifts the refusal of secret memory next to an unpatched KVM (kvm_guard.rs). */
static bool allow_unpatched_kvm;
module_param(allow_unpatched_kvm, bool, 0644);
MODULE_PARM_DESC(allow_unpatched_kvm,
		 "allow secret memory while KVM is loaded on a kernel without the secretmem KVM patch: KVM can then read a secret page through the direct map and oops the host (default: off)");

bool secretmem_shim_allow_unpatched_kvm(void)
{
	return READ_ONCE(allow_unpatched_kvm);
}

static int (*secretmem_kvm_coming)(void);
static void (*secretmem_kvm_live)(void);
static void (*secretmem_kvm_going)(void);

/* Hands the loading and the unloading of the kvm module to the module. */
static int secretmem_module_notify(struct notifier_block *nb,
				   unsigned long action, void *data)
{
	struct module *mod = data;

	if (strcmp(mod->name, "kvm"))
		return NOTIFY_DONE;
	switch (action) {
	case MODULE_STATE_COMING:
		return notifier_from_errno(secretmem_kvm_coming());
	case MODULE_STATE_LIVE:
		secretmem_kvm_live();
		return NOTIFY_OK;
	case MODULE_STATE_GOING:
		secretmem_kvm_going();
		return NOTIFY_OK;
	}
	return NOTIFY_DONE;
}

static struct notifier_block secretmem_module_nb = {
	.notifier_call = secretmem_module_notify,
};

int secretmem_shim_kvm_watch(int (*coming)(void), void (*live)(void),
			     void (*going)(void))
{
	secretmem_kvm_coming = coming;
	secretmem_kvm_live = live;
	secretmem_kvm_going = going;
	return register_module_notifier(&secretmem_module_nb);
}

void secretmem_shim_kvm_unwatch(void)
{
	unregister_module_notifier(&secretmem_module_nb);
}

/*
 * Whether KVM is built in or its module is live now: kvm_get_kvm() is one
 * of its GPL exports. A module still in its init is not found; the
 * notifier's MODULE_STATE_LIVE event covers it.
 */
bool secretmem_shim_kvm_present(void)
{
	if (IS_BUILTIN(CONFIG_KVM))
		return true;
	if (!__symbol_get("kvm_get_kvm"))
		return false;
	__symbol_put("kvm_get_kvm");
	return true;
}
#endif

#ifndef SECRETMEM_BACKEND_PATCHED
/*
 * Whether the kernel image's high mapping has an entry for @phys. phys_base
 * may be "negative" under KASLR: only the offset from it counts.
 */
static bool secretmem_image_alias(phys_addr_t phys)
{
	u64 off = phys - phys_base;
	unsigned int level;
	pte_t *pte;

	if (off >= KERNEL_IMAGE_SIZE)
		return false;
	pte = lookup_address(__START_KERNEL_map + off, &level);
	return pte && !pte_none(*pte);
}

/*
 * Whether the kernel image's high mapping aliases the first or last of @nr
 * pages from @page: pages freed from the image (init memory, the gaps
 * between its sections, marked not present there) and pages past its end in
 * its last 2 MiB. clear_mce_nospec() does not skip aliases and would make
 * such an alias present again. A block lies in one 2 MiB of that mapping.
 */
bool secretmem_shim_kernel_image_alias(struct page *page, unsigned int nr)
{
	phys_addr_t phys = page_to_phys(page);

	return secretmem_image_alias(phys) ||
	       secretmem_image_alias(phys + (((phys_addr_t)nr - 1) << PAGE_SHIFT));
}
#endif

/* Fills @nr pages from @page with @byte through the direct map (tests). */
void secretmem_shim_fill_pages(struct page *page, unsigned int nr, u8 byte)
{
	memset(page_address(page), byte, (size_t)nr << PAGE_SHIFT);
}

/* Whether @nr pages from @page read as zero through the direct map (tests). */
bool secretmem_shim_pages_zero(struct page *page, unsigned int nr)
{
	const u8 *p = page_address(page);

	return !p[0] && !memcmp(p, p + 1, ((size_t)nr << PAGE_SHIFT) - 1);
}

bool secretmem_shim_direct_map_present(struct page *page)
{
	unsigned int level;
	pte_t *pte = lookup_address((unsigned long)page_address(page), &level);

	return pte && pte_present(*pte);
}

/* Whether the direct-map entry of @page carries the UC- memory type. */
bool secretmem_shim_direct_map_uncached(struct page *page)
{
	unsigned int level;
	pte_t *pte = lookup_address((unsigned long)page_address(page), &level);

	return pte && (pte_flags(*pte) & _PAGE_CACHE_MASK) ==
		      cachemode2protval(_PAGE_CACHE_MODE_UC_MINUS);
}

struct secretmem_probe {
	struct page *page;
	int ret;
};

static void secretmem_probe_read(void *info)
{
	struct secretmem_probe *probe = info;
	unsigned long word;

	if (copy_from_kernel_nofault(&word, page_address(probe->page),
				     sizeof(word)))
		probe->ret = -EFAULT;
	else
		probe->ret = 0;
}

/*
 * Reads the page through the direct map on this CPU or on another one:
 * 0 if the read worked, -EFAULT if it faulted, -ENODEV if there is no
 * other CPU.
 */
int secretmem_shim_direct_map_read(struct page *page, bool other_cpu)
{
	struct secretmem_probe probe = { .page = page, .ret = -EINVAL };
	int cpu = get_cpu();
	int target = other_cpu ? cpumask_any_but(cpu_online_mask, cpu) : cpu;

	put_cpu();
	if (target >= nr_cpu_ids)
		return -ENODEV;
	smp_call_function_single(target, secretmem_probe_read, &probe, 1);
	return probe.ret;
}
