/*
 * Descriptor layout facts for arm64 KVM stage-2 and hyp stage-1 tables,
 * as arch/arm64/include/asm/kvm_pgtable.h (Linux 6.19) defines them.
 *
 * This header is the single source of bit positions for the Swift library.
 * Swift cannot import GENMASK-style macros, so every mask is spelled as a
 * 64-bit constant here; kvmpt_layout_checks.c proves each one against its
 * GENMASK/BIT form at compile time.
 */
#ifndef CKVMPAGETABLE_H
#define CKVMPAGETABLE_H

#include <stdbool.h>
#include <stdint.h>

#define KVMPT_OPTIONS(_name) \
    enum __attribute__((flag_enum, enum_extensibility(open))) _name : uint64_t
#define KVMPT_ENUM(_name) \
    enum __attribute__((enum_extensibility(open))) _name : uint32_t

/* One page-table entry. */
typedef uint64_t kvm_pte_t;

/* ---- Levels ------------------------------------------------------------ */

/* LPA2 with 4K pages adds level -1; the last level is always 3. */
static const int8_t KVMPT_FIRST_LEVEL = -1;
static const int8_t KVMPT_LAST_LEVEL = 3;
/* The smallest level that may hold a block: 1 with 4K pages, else 2. */
static const int8_t KVMPT_MIN_BLOCK_LEVEL_4K = 1;
static const int8_t KVMPT_MIN_BLOCK_LEVEL_16K_64K = 2;

/* ---- Valid and type bits ----------------------------------------------- */

static const uint64_t KVMPT_PTE_VALID = 0x0000000000000001ULL;      /* BIT(0) */
static const uint64_t KVMPT_PTE_TYPE = 0x0000000000000002ULL;       /* BIT(1) */
static const uint64_t KVMPT_PTE_TYPE_BLOCK = 0;
static const uint64_t KVMPT_PTE_TYPE_PAGE = 1;
static const uint64_t KVMPT_PTE_TYPE_TABLE = 1;

/* ---- Output address fields --------------------------------------------- */

static const uint64_t KVMPT_PTE_ADDR_MASK_4K = 0x0000fffffffff000ULL;   /* GENMASK(47, 12) */
static const uint64_t KVMPT_PTE_ADDR_MASK_16K = 0x0000ffffffffc000ULL;  /* GENMASK(47, 14) */
static const uint64_t KVMPT_PTE_ADDR_MASK_64K = 0x0000ffffffff0000ULL;  /* GENMASK(47, 16) */
/* 64K pages keep PA[51:48] in descriptor bits [15:12]. */
static const uint64_t KVMPT_PTE_ADDR_51_48 = 0x000000000000f000ULL;     /* GENMASK(15, 12) */
/* LPA2 (4K/16K): PA[49:PAGE_SHIFT] in place, PA[51:50] in bits [9:8]. */
static const uint64_t KVMPT_PTE_ADDR_MASK_LPA2_4K = 0x0003fffffffff000ULL;  /* GENMASK(49, 12) */
static const uint64_t KVMPT_PTE_ADDR_MASK_LPA2_16K = 0x0003ffffffffc000ULL; /* GENMASK(49, 14) */
static const uint64_t KVMPT_PTE_ADDR_51_50_LPA2 = 0x0000000000000300ULL;    /* GENMASK(9, 8) */
static const uint64_t KVMPT_PHYS_INVALID = ~0ULL;

/* ---- Leaf attributes: common ------------------------------------------- */

static const uint64_t KVMPT_PTE_LEAF_ATTR_LO = 0x0000000000000ffcULL;   /* GENMASK(11, 2) */
static const uint64_t KVMPT_PTE_LEAF_ATTR_HI = 0xfffc000000000000ULL;   /* GENMASK(63, 50) */
static const uint64_t KVMPT_PTE_LEAF_ATTR_HI_SW = 0x0780000000000000ULL; /* GENMASK(58, 55) */

/* ---- Leaf attributes: hyp stage-1 -------------------------------------- */

static const uint64_t KVMPT_S1_ATTRIDX = 0x000000000000001cULL;        /* GENMASK(4, 2) */
static const uint64_t KVMPT_S1_AP = 0x00000000000000c0ULL;             /* GENMASK(7, 6) */
static const uint64_t KVMPT_S1_AP_RO = 3;  /* nVHE values (not HVHE) */
static const uint64_t KVMPT_S1_AP_RW = 1;
static const uint64_t KVMPT_S1_SH = 0x0000000000000300ULL;             /* GENMASK(9, 8) */
static const uint64_t KVMPT_S1_SH_IS = 3;
static const uint64_t KVMPT_S1_AF = 0x0000000000000400ULL;             /* BIT(10) */
static const uint64_t KVMPT_S1_XN = 0x0040000000000000ULL;             /* BIT(54) */
static const uint64_t KVMPT_S1_GP = 0x0004000000000000ULL;             /* BIT(50) */
/* MAIR_EL2 indices the hyp uses (arch/arm64/include/asm/memory.h). */
static const uint64_t KVMPT_MT_NORMAL = 0;
static const uint64_t KVMPT_MT_NORMAL_TAGGED = 1;
static const uint64_t KVMPT_MT_NORMAL_NC = 2;
static const uint64_t KVMPT_MT_DEVICE_nGnRnE = 3;
static const uint64_t KVMPT_MT_DEVICE_nGnRE = 4;

/* ---- Leaf attributes: stage-2 ------------------------------------------ */

static const uint64_t KVMPT_S2_MEMATTR = 0x000000000000003cULL;        /* GENMASK(5, 2) */
static const uint64_t KVMPT_S2_S2AP_R = 0x0000000000000040ULL;         /* BIT(6) */
static const uint64_t KVMPT_S2_S2AP_W = 0x0000000000000080ULL;         /* BIT(7) */
static const uint64_t KVMPT_S2_SH = 0x0000000000000300ULL;             /* GENMASK(9, 8) */
static const uint64_t KVMPT_S2_SH_IS = 3;
static const uint64_t KVMPT_S2_AF = 0x0000000000000400ULL;             /* BIT(10) */
static const uint64_t KVMPT_S2_XN = 0x0060000000000000ULL;             /* GENMASK(54, 53) */
static const uint64_t KVMPT_S2_PERMS = 0x00600000000000c0ULL;          /* S2AP_R | S2AP_W | XN */

/* Stage-2 MemAttr[3:0] values without FEAT_S2FWB ... */
static const uint64_t KVMPT_MT_S2_NORMAL = 0xf;
static const uint64_t KVMPT_MT_S2_NORMAL_NC = 0x5;
static const uint64_t KVMPT_MT_S2_DEVICE_nGnRE = 0x1;
/* ... and with FEAT_S2FWB (MemAttr[2] set selects a forced type). */
static const uint64_t KVMPT_MT_S2_FWB_NORMAL = 0x6;
static const uint64_t KVMPT_MT_S2_FWB_NORMAL_NC = 0x5;
static const uint64_t KVMPT_MT_S2_FWB_DEVICE_nGnRE = 0x1;

/* ---- Invalid entries --------------------------------------------------- */

static const uint64_t KVMPT_INVALID_PTE_OWNER_MASK = 0x00000000000003fcULL; /* GENMASK(9, 2) */
static const uint64_t KVMPT_MAX_OWNER_ID = 1;
/* Marks an entry in the middle of break-before-make. */
static const uint64_t KVMPT_INVALID_PTE_LOCKED = 0x0000000000000400ULL;     /* BIT(10) */

/* ---- Range TLBI -------------------------------------------------------- */

/* __TLBI_RANGE_PAGES(31, 3): the most pages one range TLBI can cover. */
static const uint64_t KVMPT_MAX_TLBI_RANGE_PAGES = 0x200000ULL;

/* ---- Prot and walk flags ----------------------------------------------- */

/* enum kvm_pgtable_prot. */
typedef KVMPT_OPTIONS(kvm_pgtable_prot) {
    KVM_PGTABLE_PROT_PX = 1ULL << 0,
    KVM_PGTABLE_PROT_UX = 1ULL << 1,
    KVM_PGTABLE_PROT_X = (1ULL << 0) | (1ULL << 1),
    KVM_PGTABLE_PROT_W = 1ULL << 2,
    KVM_PGTABLE_PROT_R = 1ULL << 3,
    KVM_PGTABLE_PROT_DEVICE = 1ULL << 4,
    KVM_PGTABLE_PROT_NORMAL_NC = 1ULL << 5,
    KVM_PGTABLE_PROT_SW0 = 1ULL << 55,
    KVM_PGTABLE_PROT_SW1 = 1ULL << 56,
    KVM_PGTABLE_PROT_SW2 = 1ULL << 57,
    KVM_PGTABLE_PROT_SW3 = 1ULL << 58,
} kvm_pgtable_prot;

/* enum kvm_pgtable_walk_flags. */
typedef KVMPT_OPTIONS(kvm_pgtable_walk_flags) {
    KVM_PGTABLE_WALK_LEAF = 1ULL << 0,
    KVM_PGTABLE_WALK_TABLE_PRE = 1ULL << 1,
    KVM_PGTABLE_WALK_TABLE_POST = 1ULL << 2,
    KVM_PGTABLE_WALK_SHARED = 1ULL << 3,
    KVM_PGTABLE_WALK_HANDLE_FAULT = 1ULL << 4,
    KVM_PGTABLE_WALK_SKIP_BBM_TLBI = 1ULL << 5,
    KVM_PGTABLE_WALK_SKIP_CMO = 1ULL << 6,
} kvm_pgtable_walk_flags;

/* enum kvm_pgtable_stage2_flags. */
typedef KVMPT_OPTIONS(kvm_pgtable_stage2_flags) {
    KVM_PGTABLE_S2_NOFWB = 1ULL << 0,
    KVM_PGTABLE_S2_IDMAP = 1ULL << 1,
} kvm_pgtable_stage2_flags;

/* ---- VTCR_EL2 / TCR_EL2 fields (arch/arm64/include/asm/kvm_arm.h) ------ */

static const uint64_t KVMPT_VTCR_T0SZ = 0x000000000000003fULL;   /* [5:0] */
static const uint64_t KVMPT_VTCR_SL0 = 0x00000000000000c0ULL;    /* [7:6] */
static const uint64_t KVMPT_VTCR_IRGN0 = 0x0000000000000300ULL;  /* [9:8] */
static const uint64_t KVMPT_VTCR_ORGN0 = 0x0000000000000c00ULL;  /* [11:10] */
static const uint64_t KVMPT_VTCR_SH0 = 0x0000000000003000ULL;    /* [13:12] */
static const uint64_t KVMPT_VTCR_TG0 = 0x000000000000c000ULL;    /* [15:14] */
static const uint64_t KVMPT_VTCR_PS = 0x0000000000070000ULL;     /* [18:16] */
static const uint64_t KVMPT_VTCR_VS = 0x0000000000080000ULL;     /* BIT(19) */
static const uint64_t KVMPT_VTCR_HA = 0x0000000000200000ULL;     /* BIT(21) */
static const uint64_t KVMPT_VTCR_DS = 0x0000000100000000ULL;     /* BIT(32) */
static const uint64_t KVMPT_VTCR_SL2 = 0x0000000200000000ULL;    /* BIT(33) */
static const uint64_t KVMPT_VTCR_RES1 = 0x0000000080000000ULL;   /* BIT(31) */
/* TG0 encodings (shared by VTCR_EL2 and TCR_EL2). */
static const uint64_t KVMPT_TG0_4K = 0;
static const uint64_t KVMPT_TG0_64K = 1;
static const uint64_t KVMPT_TG0_16K = 2;
/* TCR_EL2 (nVHE) fields that differ from VTCR. */
static const uint64_t KVMPT_TCR_EL2_PS = 0x0000000000070000ULL;  /* [18:16] */
static const uint64_t KVMPT_TCR_EL2_DS = 0x0000000100000000ULL;  /* BIT(32) */
static const uint64_t KVMPT_TCR_EL2_RES1 = 0x0000000080800000ULL; /* BIT(31) | BIT(23) */

/* ---- Debug views of a descriptor (little-endian bit-field order) -------- */

/* A stage-2 block or page descriptor. */
struct __attribute__((packed)) kvmpt_s2_leaf_view {
    uint64_t valid : 1;
    uint64_t type : 1;
    uint64_t memattr : 4;
    uint64_t s2ap_r : 1;
    uint64_t s2ap_w : 1;
    uint64_t sh : 2;
    uint64_t af : 1;
    uint64_t res0_11 : 1;
    uint64_t oa : 38;     /* bits [49:12]; what is address depends on format */
    uint64_t res0_50 : 1;
    uint64_t dbm : 1;
    uint64_t contig : 1;
    uint64_t xn : 2;
    uint64_t sw : 4;
    uint64_t ign : 5;
};

/* A hyp stage-1 block or page descriptor. */
struct __attribute__((packed)) kvmpt_s1_leaf_view {
    uint64_t valid : 1;
    uint64_t type : 1;
    uint64_t attridx : 3;
    uint64_t ns : 1;
    uint64_t ap : 2;
    uint64_t sh : 2;
    uint64_t af : 1;
    uint64_t ng : 1;
    uint64_t oa : 38;     /* bits [49:12] */
    uint64_t gp : 1;
    uint64_t dbm : 1;
    uint64_t contig : 1;
    uint64_t pxn : 1;
    uint64_t xn : 1;
    uint64_t sw : 4;
    uint64_t ign : 5;
};

/* A table descriptor. */
struct __attribute__((packed)) kvmpt_table_view {
    uint64_t valid : 1;
    uint64_t type : 1;
    uint64_t ign : 10;
    uint64_t next : 38;   /* bits [49:12] */
    uint64_t ign_hi : 9;
    uint64_t pxn_table : 1;
    uint64_t xn_table : 1;
    uint64_t ap_table : 2;
    uint64_t ns_table : 1;
};

/* One entry seen through each view. */
typedef union {
    kvm_pte_t raw;
    struct kvmpt_s2_leaf_view s2;
    struct kvmpt_s1_leaf_view s1;
    struct kvmpt_table_view table;
} kvmpt_descriptor_view;

/* ---- Helpers ----------------------------------------------------------- */

static inline bool kvmpt_pte_valid(kvm_pte_t pte) { return (pte & KVMPT_PTE_VALID) != 0; }

/* Bits a level's entry resolves: ARM64_HW_PGTABLE_LEVEL_SHIFT(level). */
static inline uint32_t kvmpt_granule_shift(uint32_t page_shift, int8_t level) {
    return (page_shift - 3) * (uint32_t)(4 - level) + 3;
}

static inline uint64_t kvmpt_granule_size(uint32_t page_shift, int8_t level) {
    return 1ULL << kvmpt_granule_shift(page_shift, level);
}

/* Table levels needed for va_bits: ARM64_HW_PGTABLE_LEVELS(va_bits). */
static inline int32_t kvmpt_hw_pgtable_levels(uint32_t page_shift, uint32_t va_bits) {
    return ((int32_t)va_bits - 4) / (int32_t)(page_shift - 3);
}

static inline uint64_t kvmpt_addr_mask(uint32_t page_shift, bool lpa2) {
    uint64_t top = lpa2 ? ((1ULL << 50) - 1) : ((1ULL << 48) - 1);
    return top & ~((1ULL << page_shift) - 1);
}

/* kvm_phys_to_pte() for one descriptor format. */
static inline kvm_pte_t kvmpt_phys_to_pte(uint64_t pa, uint32_t page_shift, bool lpa2) {
    kvm_pte_t pte = pa & kvmpt_addr_mask(page_shift, lpa2);
    if (lpa2)
        pte |= ((pa >> 50) & 0x3) << 8;
    else if (page_shift == 16)
        pte |= ((pa >> 48) & 0xf) << 12;
    return pte;
}

/* kvm_pte_to_phys() for one descriptor format. */
static inline uint64_t kvmpt_pte_to_phys(kvm_pte_t pte, uint32_t page_shift, bool lpa2) {
    uint64_t pa = pte & kvmpt_addr_mask(page_shift, lpa2);
    if (lpa2)
        pa |= ((pte >> 8) & 0x3) << 50;
    else if (page_shift == 16)
        pa |= ((pte >> 12) & 0xf) << 48;
    return pa;
}

/* PAGE_S2_MEMATTR(): the MemAttr field for a memory type. */
static inline kvm_pte_t kvmpt_s2_memattr(uint64_t mt, uint64_t mt_fwb, bool fwb) {
    return (fwb ? mt_fwb : mt) << 2;
}

#endif /* CKVMPAGETABLE_H */
