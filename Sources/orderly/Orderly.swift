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
        subcommands: [DemoCommand.self, ClusterCommand.self, SimulateCommand.self, NodeCommand.self, BalancerCommand.self, StatsCommand.self, WarehouseCommand.self, InspectCommand.self, EventsCommand.self, BackupCommand.self, CertsCommand.self, RestoreCommand.self, BenchCommand.self, SimtestCommand.self])

    /// ArgumentParser's entry point, after the parent watch (see ParentWatch).
    static func main() async {
        ParentWatch.startIfAsked()
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
