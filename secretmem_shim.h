/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers for the secretmemfd module: static inlines, macros and C-only
 * plumbing that the kernel crate has no binding for. Mirrored in shim.rs.
 */
#ifndef SECRETMEM_SHIM_H
#define SECRETMEM_SHIM_H

#include <linux/mm_types.h>
#include <linux/types.h>

struct file;
struct file_operations;
struct inode;
struct inode_operations;
struct miscdevice;
struct user_struct;

struct file *secretmem_shim_file_create(const struct file_operations *fops,
					const struct inode_operations *iops,
					void *file_priv, void *inode_priv);
void secretmem_shim_inode_lock(struct inode *inode);
void secretmem_shim_inode_unlock(struct inode *inode);

int secretmem_shim_init_fault(int point);
int secretmem_shim_may_open_device(dev_t devt);
dev_t secretmem_shim_misc_devt(const struct miscdevice *misc);
bool secretmem_shim_capable_rawio(void);
bool secretmem_shim_in_uncached_group(void);

unsigned long secretmem_shim_page_to_pfn(struct page *page);
struct page *secretmem_shim_pfn_to_page(unsigned long pfn);
unsigned long secretmem_shim_page_address(struct page *page);
bool secretmem_shim_blocks_enabled(void);
struct page *secretmem_shim_alloc_pages(unsigned int order, bool spare);
void secretmem_shim_free_pages(struct page *page, unsigned int order);
void secretmem_shim_zero_pages(struct page *page, unsigned int nr);
bool secretmem_shim_kernel_image_alias(struct page *page, unsigned int nr);
#ifdef SECRETMEM_BACKEND_PATCHED
int secretmem_shim_direct_map_remove(struct page *page, unsigned int nr);
int secretmem_shim_direct_map_restore(struct page *page, unsigned int nr);
#else
/* The MCE helpers change one page per call. */
int secretmem_shim_direct_map_remove(unsigned long pfn);
int secretmem_shim_direct_map_restore(unsigned long pfn);
#endif
#ifdef SECRETMEM_BACKEND_PATCHED
u64 secretmem_shim_current_memcg_id(void);
/* The most pages a pool batch holds: PreparedPage::MAX in direct_map.rs. */
#define SECRETMEM_POOL_BATCH_MAX 32
unsigned int secretmem_shim_pool_batch(void);
int secretmem_shim_pool_register(unsigned long (*count)(void),
				 unsigned long (*shrink)(unsigned long nr));
void secretmem_shim_pool_unregister(void);
#endif
int secretmem_shim_set_pages_uc(struct page *page, unsigned int nr);
int secretmem_shim_set_pages_wb(struct page *page, unsigned int nr);

void secretmem_shim_vma_set_pfnmap(struct vm_area_struct *vma,
				   const struct vm_operations_struct *ops,
				   void *priv, bool uncached);

struct user_struct *secretmem_shim_get_current_user(void);
void secretmem_shim_put_user(struct user_struct *user);
unsigned long secretmem_shim_memlock_limit_pages(void);
int secretmem_shim_charge_locked(struct user_struct *user,
				 unsigned long pages, unsigned long limit);
void secretmem_shim_uncharge_locked(struct user_struct *user,
				    unsigned long pages);

int secretmem_shim_pm_register(int (*begin)(bool restore), void (*end)(void),
			       int (*check_frozen)(void));
void secretmem_shim_pm_unregister(void);

int secretmem_shim_entry_register(long (*create)(unsigned int flags));
void secretmem_shim_entry_unregister(void);

int secretmem_shim_kvm_watch(int (*coming)(void), void (*live)(void),
			     void (*going)(void));
void secretmem_shim_kvm_unwatch(void);
bool secretmem_shim_kvm_present(void);
bool secretmem_shim_allow_unpatched_kvm(void);

void secretmem_shim_fill_pages(struct page *page, unsigned int nr, u8 byte);
bool secretmem_shim_pages_zero(struct page *page, unsigned int nr);
bool secretmem_shim_direct_map_present(struct page *page);
bool secretmem_shim_direct_map_uncached(struct page *page);
int secretmem_shim_direct_map_read(struct page *page, bool other_cpu);

#endif /* SECRETMEM_SHIM_H */
