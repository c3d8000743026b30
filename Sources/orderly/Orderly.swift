import ArgumentParser

@main
struct Orderly: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orderly",
        abstract: "A distributed, event-sourced order and payment engine.",
        discussion: """
            Run an API node with `orderly node`, look into its SQLite log with
            `orderly inspect`, and measure it with `orderly bench`.
            """,
        subcommands: [DemoCommand.self, ClusterCommand.self, SimulateCommand.self, NodeCommand.self, BalancerCommand.self, StatsCommand.self, WarehouseCommand.self, InspectCommand.self, BenchCommand.self])
}
