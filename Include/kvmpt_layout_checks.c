/*
 * Compile-time proof that every mask in CKVMPageTable.h equals the GENMASK /
 * BIT expression kvm_pgtable.h writes for it, and that the debug views are
 * exactly one descriptor wide. Nothing here runs.
 */
#include "CKVMPageTable.h"

#define BIT(n) (1ULL << (n))
#define GENMASK(h, l) ((~0ULL << (l)) & (~0ULL >> (63 - (h))))

_Static_assert(KVMPT_PTE_VALID == BIT(0), "valid");
_Static_assert(KVMPT_PTE_TYPE == BIT(1), "type");
_Static_assert(KVMPT_PTE_ADDR_MASK_4K == GENMASK(47, 12), "addr 4K");
_Static_assert(KVMPT_PTE_ADDR_MASK_16K == GENMASK(47, 14), "addr 16K");
_Static_assert(KVMPT_PTE_ADDR_MASK_64K == GENMASK(47, 16), "addr 64K");
_Static_assert(KVMPT_PTE_ADDR_51_48 == GENMASK(15, 12), "addr 51:48");
_Static_assert(KVMPT_PTE_ADDR_MASK_LPA2_4K == GENMASK(49, 12), "addr lpa2 4K");
_Static_assert(KVMPT_PTE_ADDR_MASK_LPA2_16K == GENMASK(49, 14), "addr lpa2 16K");
_Static_assert(KVMPT_PTE_ADDR_51_50_LPA2 == GENMASK(9, 8), "addr 51:50 lpa2");
_Static_assert(KVMPT_PTE_LEAF_ATTR_LO == GENMASK(11, 2), "attr lo");
_Static_assert(KVMPT_PTE_LEAF_ATTR_HI == GENMASK(63, 50), "attr hi");
_Static_assert(KVMPT_PTE_LEAF_ATTR_HI_SW == GENMASK(58, 55), "sw");
_Static_assert(KVMPT_S1_ATTRIDX == GENMASK(4, 2), "attridx");
_Static_assert(KVMPT_S1_AP == GENMASK(7, 6), "ap");
_Static_assert(KVMPT_S1_SH == GENMASK(9, 8), "s1 sh");
_Static_assert(KVMPT_S1_AF == BIT(10), "s1 af");
_Static_assert(KVMPT_S1_XN == BIT(54), "s1 xn");
_Static_assert(KVMPT_S1_GP == BIT(50), "s1 gp");
_Static_assert(KVMPT_S2_MEMATTR == GENMASK(5, 2), "memattr");
_Static_assert(KVMPT_S2_S2AP_R == BIT(6), "s2ap r");
_Static_assert(KVMPT_S2_S2AP_W == BIT(7), "s2ap w");
_Static_assert(KVMPT_S2_SH == GENMASK(9, 8), "s2 sh");
_Static_assert(KVMPT_S2_AF == BIT(10), "s2 af");
_Static_assert(KVMPT_S2_XN == GENMASK(54, 53), "s2 xn");
_Static_assert(KVMPT_S2_PERMS == (BIT(6) | BIT(7) | GENMASK(54, 53)), "s2 perms");
_Static_assert(KVMPT_INVALID_PTE_OWNER_MASK == GENMASK(9, 2), "owner");
_Static_assert(KVMPT_INVALID_PTE_LOCKED == BIT(10), "locked");
_Static_assert(KVMPT_MAX_TLBI_RANGE_PAGES == ((31ULL + 1) << (5 * 3 + 1)), "range pages");
_Static_assert(KVM_PGTABLE_PROT_X == (KVM_PGTABLE_PROT_PX | KVM_PGTABLE_PROT_UX), "prot x");
_Static_assert((uint64_t)KVM_PGTABLE_PROT_SW0 == BIT(55), "sw0");
_Static_assert(((uint64_t)KVM_PGTABLE_PROT_SW0 | KVM_PGTABLE_PROT_SW1 | KVM_PGTABLE_PROT_SW2 |
                KVM_PGTABLE_PROT_SW3) == GENMASK(58, 55), "sw bits");
_Static_assert(KVMPT_VTCR_T0SZ == GENMASK(5, 0), "t0sz");
_Static_assert(KVMPT_VTCR_SL0 == GENMASK(7, 6), "sl0");
_Static_assert(KVMPT_VTCR_IRGN0 == GENMASK(9, 8), "irgn0");
_Static_assert(KVMPT_VTCR_ORGN0 == GENMASK(11, 10), "orgn0");
_Static_assert(KVMPT_VTCR_SH0 == GENMASK(13, 12), "sh0");
_Static_assert(KVMPT_VTCR_TG0 == GENMASK(15, 14), "tg0");
_Static_assert(KVMPT_VTCR_PS == GENMASK(18, 16), "ps");
_Static_assert(KVMPT_VTCR_VS == BIT(19), "vs");
_Static_assert(KVMPT_VTCR_HA == BIT(21), "ha");
_Static_assert(KVMPT_VTCR_DS == BIT(32), "ds");
_Static_assert(KVMPT_VTCR_SL2 == BIT(33), "sl2");
_Static_assert(sizeof(struct kvmpt_s2_leaf_view) == 8, "s2 view");
_Static_assert(sizeof(struct kvmpt_s1_leaf_view) == 8, "s1 view");
_Static_assert(sizeof(struct kvmpt_table_view) == 8, "table view");
_Static_assert(sizeof(kvmpt_descriptor_view) == 8, "view union");

/* SwiftPM wants one symbol in a C target. */
int kvmpt_layout_checks_passed(void) { return 1; }
