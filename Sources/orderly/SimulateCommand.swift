import ArgumentParser
import AsyncHTTPClient
import NIOSSL
import Foundation
import Simulator

/// Progress on one terminal line when stderr is a terminal, else a line each.
func progressLine(_ text: String) {
    if isatty(STDERR_FILENO) == 1 {
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
    } else {
        FileHandle.standardError.write(Data("\(text)\n".utf8))
    }
}

func endProgress() {
    if isatty(STDERR_FILENO) == 1 { FileHandle.standardError.write(Data("\n".utf8)) }
}

/// The HTTP client of the simulator: many connections, none shared with others.
func simulatorClient(tls: TLSConfiguration? = nil) -> HTTPClient {
    var configuration = HTTPClient.Configuration()
    configuration.tlsConfiguration = tls
    configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 512)
    configuration.timeout = .init(connect: .seconds(2), read: .seconds(15))
    return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
}

func printVerdict(_ verdict: Checker.Verdict, report: String) {
    if verdict.passed {
        print("checker: PASSED — \(verdict.ordersChecked) acknowledged orders and \(verdict.paymentsChecked) payments as acknowledged, \(verdict.shipped) paid orders shipped once, stats totals equal")
    } else {
        print("checker: FAILED — \(verdict.violations.count) violation(s):")
        for violation in verdict.violations.prefix(20) { print("  " + violation) }
    }
    print("report: \(report)")
}

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Drive open-loop customer load at a cluster, inject failures, check, and write a report.",
        discussion: """
            Customers arrive at --rate per second whatever the answers take (latency is
            measured from each request's intended send time). Each places an order and
            pays; some pay before ordering or pay twice, some cancel. Failures act on the
            cluster in --data (its cluster.json): "kill api-2@10s,start api-2@20s"
            (kill, stop, cont, term, start). At the end the checker verifies every
            acknowledged order and payment, that each paid order ships once, and that the
            stats totals match; it exits 1 on any violation. The report goes to --out:
            index.html, summary.json, requests.csv. (`orderly simtest` runs the whole
            cluster in one process under a seeded simulator instead.)
            """)

    @Option(help: "Base URL of the balancer (or an API node): http://HOST:PORT, or https:// with --tls-ca.")
    var target: String

    @OptionGroup(title: "HTTPS")
    var https: HTTPSClientOptions

    @Option(help: "Customers per second.")
    var rate: Double = 20

    @Option(help: "How long customers keep arriving (e.g. 30s).")
    var duration: DurationArgument = DurationArgument(argument: "30s")!

    @Option(help: "Failures to inject, e.g. \"kill api-2@10s,start api-2@20s\".")
    var failures: String?

    @Option(help: "Data folder of the cluster the failures act on.")
    var data: String = "./cluster-data"

    @Option(help: "Folder for the report.")
    var out: String = "./simulation-report"

    @Option(help: "Seed of the customers' choices.")
    var seed: UInt64 = 1

    @Option(help: "Share of customers who pay before they order (0-1).")
    var payFirstShare: Double = 0.1

    @Option(help: "Share of customers who send their payment twice, as a retry with the same id (0-1).")
    var duplicateShare: Double = 0.1

    @Option(help: "Share of customers who cancel instead of paying (0-1).")
    var cancelShare: Double = 0.05

    func validate() throws {
        for (name, share) in [("--pay-first-share", payFirstShare), ("--duplicate-share", duplicateShare), ("--cancel-share", cancelShare)] {
            guard (0...1).contains(share) else { throw ValidationError("\(name) must be from 0 to 1") }
        }
        guard target.hasPrefix("http://") || target.hasPrefix("https://") else { throw ValidationError("--target must be an http:// or https:// URL") }
        if target.hasPrefix("https://") && https.tlsCa == nil {
            throw ValidationError("an https:// --target needs --tls-ca (the CA that signed the balancer's certificate)")
        }
        guard rate > 0, rate <= 5000 else { throw ValidationError("--rate must be above 0 and at most 5000") }
        guard duration.milliseconds >= 1000 else { throw ValidationError("--duration must be at least 1s") }
        if let failures { _ = try FailureEvent.parse(failures) }
    }

    func run() async throws {
        let client = simulatorClient(tls: try https.client())
        let base = target.hasSuffix("/") ? String(target.dropLast()) : target
        var config = SimulationConfig(target: base, rate: rate, durationMs: duration.milliseconds, runID: "sim-\(UInt32.random(in: 0...UInt32.max))")
        config.failures = try failures.map { try FailureEvent.parse($0) } ?? []
        config.seed = seed
        config.payFirstShare = payFirstShare
        config.duplicatePaymentShare = duplicateShare
        config.cancelShare = cancelShare
        let data = self.data
        let statsBefore = await Checker.stats(client, target: base)
        let simulation = Simulation(config: config, client: client, inject: { try await apply($0, data: data) }, progress: progressLine)
        let outcome = await simulation.run()
        endProgress()
        let verdict = await Checker.run(target: base, orders: outcome.orders, client: client, statsBefore: statsBefore, progress: progressLine)
        endProgress()
        let report = try Report.write(phases: [PhaseResult(name: "run", rate: rate, outcome: outcome)], verdict: verdict, to: out, title: "orderly simulate")
        printVerdict(verdict, report: report)
        try? await client.shutdown()
        if !verdict.passed { throw ExitCode(1) }
    }
}

/// Carries out a failure on the cluster in `data`.
func apply(_ event: FailureEvent, data: String) async throws {
    switch event.action {
    case .kill: try ClusterControl.signal(event.node, SIGKILL, data: data)
    case .stop: try ClusterControl.signal(event.node, SIGSTOP, data: data)
    case .cont: try ClusterControl.signal(event.node, SIGCONT, data: data)
    case .term: try ClusterControl.signal(event.node, SIGTERM, data: data)
    case .start: _ = try await ClusterControl.restart(event.node, data: data)
    }
    progressLine("failure: \(event)")
    endProgress()
}

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Launch a cluster, load it without and then with a node failure, check, and write one report.",
        discussion: """
            Starts a balancer, a warehouse, a stats node and three API nodes in a temp
            folder; runs customers for half of --duration without failures, then for the
            other half while api-2 is SIGKILLed and restarted; checks every acknowledged
            order, payment, shipment and the stats; writes the report (both phases side by
            side) to --out; stops everything. Exits 0 only if the checker passed.
            """)

    @Option(help: "Total seconds of load (two phases of half each).")
    var duration: Int = 30

    @Option(help: "Customers per second.")
    var rate: Double = 30

    @Option(help: "Folder for the report.")
    var out: String = "./demo-report"

    @Flag(help: "Keep the cluster's data folder (its path is printed).")
    var keepData = false

    func validate() throws {
        guard (4...3600).contains(duration) else { throw ValidationError("--duration must be 4-3600 seconds") }
        guard rate > 0, rate <= 2000 else { throw ValidationError("--rate must be above 0 and at most 2000") }
    }

    func run() async throws {
        let data = (NSTemporaryDirectory() as NSString).appendingPathComponent("orderly-demo-\(UUID().uuidString.prefix(8))")
        let launcher = try ClusterLauncher(data: data, apiNodes: 3, basePort: 0)
        let client = simulatorClient()
        defer {
            launcher.down()
            if !keepData { try? FileManager.default.removeItem(atPath: data) }
        }
        try await launcher.up { progressLine($0); endProgress() }
        printTable(launcher.file.nodes)
        guard let balancer = launcher.file.nodes.first(where: { $0.role == "balancer" }) else { throw ValidationError("no balancer started") }
        let target = "http://\(balancer.http)"
        let statsBefore = await Checker.stats(client, target: target)
        let half = Int64(duration) * 500
        let runID = "demo-\(UInt32.random(in: 0...UInt32.max))"

        var calm = SimulationConfig(target: target, rate: rate, durationMs: half, runID: runID + "-a")
        calm.phase = "without node failures"
        let first = await Simulation(config: calm, client: client, progress: progressLine).run()
        endProgress()

        var stormy = SimulationConfig(target: target, rate: rate, durationMs: half, runID: runID + "-b")
        stormy.phase = "with node failures"
        stormy.seed = 2
        stormy.failures = [
            FailureEvent(action: .kill, node: "api-2", atMs: half / 4),
            FailureEvent(action: .start, node: "api-2", atMs: half * 3 / 5),
        ]
        let second = await Simulation(
            config: stormy, client: client,
            inject: { event in
                switch event.action {
                case .start: _ = try await launcher.restart(event.node)
                case .kill: try launcher.signal(event.node, SIGKILL)
                case .stop: try launcher.signal(event.node, SIGSTOP)
                case .cont: try launcher.signal(event.node, SIGCONT)
                case .term: try launcher.signal(event.node, SIGTERM)
                }
                progressLine("failure: \(event)")
                endProgress()
            }, progress: progressLine
        ).run()
        endProgress()

        let orders = first.orders.merging(second.orders) { $1 }
        let verdict = await Checker.run(target: target, orders: orders, client: client, statsBefore: statsBefore, progress: progressLine)
        endProgress()
        let report = try Report.write(
            phases: [PhaseResult(name: calm.phase, rate: rate, outcome: first), PhaseResult(name: stormy.phase, rate: rate, outcome: second)],
            verdict: verdict, to: out, title: "orderly demo: without / with node failures")
        printVerdict(verdict, report: report)
        if keepData { print("cluster data kept in \(data)") }
        try? await client.shutdown()
        if !verdict.passed { throw ExitCode(1) }
    }
}
