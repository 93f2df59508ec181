import ArgumentParser

/// `kvmpt`: arm64 KVM stage-2 page tables, as the kernel builds them.
@main
struct KVMPT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvmpt",
        abstract: "Build, walk, measure and inspect arm64 KVM stage-2 and hyp page tables, as Linux's pgtable.c does.",
        subcommands: [Run.self, Decode.self, Translate.self, Lint.self, Diff.self, Stats.self, Cost.self]
    )
}
