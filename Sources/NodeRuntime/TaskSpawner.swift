/// Where a node starts its unstructured tasks (follow loops, gossip sends,
/// background drains). A real node starts plain tasks; a simulated node
/// starts them on its own executor, which the simulator steps, so that
/// nothing of the node runs where the simulation cannot see it. Node logic
/// MUST NOT use `Task {}` or `Task.detached` from a nonisolated context:
/// those run on the global pool and escape the simulation.
public protocol TaskSpawner: Sendable {
    @discardableResult
    func spawn(_ body: @escaping @Sendable () async -> Void) -> Task<Void, Never>
}

/// The production spawner: plain tasks on the global pool.
public struct GlobalTaskSpawner: TaskSpawner {
    public init() {}

    @discardableResult
    public func spawn(_ body: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        Task { await body() }
    }
}

/// What a node's logic takes from its surroundings besides storage and the
/// network: its clock, where it starts tasks, and the seed of its random
/// choices (gossip targets). One value, passed to the node's assembly.
public struct NodeEnvironment: Sendable {
    public var clock: any NodeClock
    public var spawner: any TaskSpawner
    public var randomSeed: UInt64

    public init(clock: any NodeClock, spawner: any TaskSpawner, randomSeed: UInt64) {
        self.clock = clock
        self.spawner = spawner
        self.randomSeed = randomSeed
    }
}
