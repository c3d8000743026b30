import OrderDomain

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The simulated world: virtual time, the timers of every node, and one
/// executor per node life on which all of that node's tasks and actors run.
/// The driver (`run(until:)`) runs one job at a time on the calling thread,
/// picked by the seed's generator, and moves time to the next timer when
/// no job is ready. Everything in the world happens on that one thread, so
/// one seed gives one run.
///
/// Single-threaded by contract: every method is called by the driver or by
/// a job it runs. A job enqueued from another thread means something
/// escaped the simulation (a `Task {}` on the global pool): the world
/// records it as an escape, and the run is not deterministic.
final class SimWorld: @unchecked Sendable {
    /// Virtual nanoseconds since the run began.
    private(set) var nowNs: Int64 = 0
    /// Which job runs next, and what each costs.
    let scheduling: RandomStream
    let seed: UInt64
    /// Wall time (ms since the epoch) at the start of the run.
    let epochWallMs: Int64 = 1_767_225_600_000

    private var executors: [NodeExecutor] = []
    /// Executors with jobs that may run now.
    private var runnable: [NodeExecutor] = []
    private var timers = TimerHeap()
    private var nextTimerID: UInt64 = 0
    private let driverThread: pthread_t
    private(set) var escapes = 0
    /// Jobs run so far (a measure of the run's cost).
    private(set) var jobsRun = 0
    /// Virtual time each job takes, at most (a little CPU per step, so time
    /// moves under load and timers come due between jobs).
    var jobCostNsMax: Int64 = 20_000

    init(seed: UInt64) {
        self.seed = seed
        scheduling = RandomStream(seed: seed, name: "scheduling")
        driverThread = pthread_self()
    }

    /// A stream of draws of its own for one concern of the run (faults,
    /// clients, network, disks): a change in how often one concern draws
    /// leaves the others' draws as they were, so a seed keeps its faults
    /// and its customers when the code it runs changes.
    func stream(_ name: String) -> RandomStream {
        RandomStream(seed: seed, name: name)
    }

    var nowMs: Int64 { nowNs / 1_000_000 }

    // MARK: Executors

    func makeExecutor(name: String) -> NodeExecutor {
        let executor = NodeExecutor(world: self, name: name)
        executors.append(executor)
        return executor
    }

    fileprivate func enqueue(_ job: UnownedJob, on executor: NodeExecutor) {
        if pthread_equal(pthread_self(), driverThread) == 0 {
            escapes += 1
        }
        switch executor.state {
        case .dead:
            return
        case .running:
            executor.jobs.append(job)
            if executor.jobs.count == 1 { runnable.append(executor) }
        case .paused:
            executor.jobs.append(job)
        }
    }

    /// Stops running the executor's jobs (a paused process): they wait.
    func pause(_ executor: NodeExecutor) {
        guard executor.state == .running else { return }
        executor.state = .paused
        runnable.removeAll { $0 === executor }
    }

    func resume(_ executor: NodeExecutor) {
        guard executor.state == .paused else { return }
        executor.state = .running
        if !executor.jobs.isEmpty { runnable.append(executor) }
        let fires = executor.deferred
        executor.deferred = []
        for fire in fires { fire() }
    }

    /// The process is gone: its jobs never run, later ones are dropped.
    func kill(_ executor: NodeExecutor) {
        if executor.state == .running { runnable.removeAll { $0 === executor } }
        executor.state = .dead
        executor.jobs.removeAll()
        executor.deferred.removeAll()
    }

    // MARK: Timers

    /// Calls `fire` at `dueNs` (virtual), on the driver, unless cancelled.
    @discardableResult
    func at(_ dueNs: Int64, _ fire: @escaping () -> Void) -> SimTimer {
        nextTimerID &+= 1
        let timer = SimTimer(dueNs: max(dueNs, nowNs), id: nextTimerID, fire: fire)
        timers.push(timer)
        return timer
    }

    @discardableResult
    func after(_ delayNs: Int64, _ fire: @escaping () -> Void) -> SimTimer {
        at(nowNs &+ max(0, delayNs), fire)
    }

    // MARK: Driving

    /// Runs jobs and timers until virtual time reaches `endNs` (or nothing
    /// is left to do, in which case time jumps to `endNs`).
    func run(untilNs endNs: Int64) {
        while true {
            if let timer = timers.peek, timer.dueNs <= nowNs {
                _ = timers.pop()
                if !timer.cancelled { timer.fire() }
                continue
            }
            if !runnable.isEmpty {
                runOneJob()
                continue
            }
            guard let timer = timers.peek, timer.dueNs <= endNs else { break }
            nowNs = max(nowNs, timer.dueNs)
        }
        nowNs = max(nowNs, endNs)
    }

    private func runOneJob() {
        let slot = Int(scheduling.next() % UInt64(runnable.count))
        let executor = runnable[slot]
        // Mostly the oldest job (a pool's queue is roughly FIFO), sometimes
        // any: both orders happen on a real machine.
        let count = executor.jobs.count
        let index = count > 1 && scheduling.next() % 4 == 0 ? Int(scheduling.next() % UInt64(count)) : 0
        let job = executor.jobs.remove(at: index)
        if executor.jobs.isEmpty {
            runnable.swapAt(slot, runnable.count - 1)
            runnable.removeLast()
        }
        jobsRun += 1
        if jobCostNsMax > 0 { nowNs += Int64(scheduling.next() % UInt64(jobCostNsMax)) + 1 }
        job.runSynchronously(isolatedTo: executor.asUnownedSerialExecutor(), taskExecutor: executor.asUnownedTaskExecutor())
    }
}

/// Seeded draws (SplitMix64), shared by reference.
final class RandomStream: @unchecked Sendable {
    private var generator: SplitMix64

    init(seed: UInt64, name: String = "") {
        var hash = FNV1a()
        hash.add(name)
        generator = SplitMix64(seed: seed ^ hash.value)
    }

    func next() -> UInt64 { generator.next() }

    /// A stream of its own, for work that runs beside this one's.
    func fork() -> RandomStream { RandomStream(seed: next()) }

    func chance(_ probability: Double) -> Bool {
        probability > 0 && Double(next() % 1_000_000) < probability * 1_000_000
    }

    func uniform(_ range: ClosedRange<Int64>) -> Int64 {
        range.lowerBound + Int64(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    func pick<T>(_ items: [T]) -> T {
        items[Int(next() % UInt64(items.count))]
    }
}

/// The executor of one life of one simulated node (or of the clients): its
/// tasks run with it as their preferred executor, so they and the default
/// actors they call run only when the world's driver picks them.
final class NodeExecutor: SerialExecutor, TaskExecutor, @unchecked Sendable {
    enum State { case running, paused, dead }

    unowned let world: SimWorld
    let name: String
    var state = State.running
    fileprivate var jobs: [UnownedJob] = []
    /// Timers that came due while paused: they fire when it resumes.
    fileprivate var deferred: [() -> Void] = []

    init(world: SimWorld, name: String) {
        self.world = world
        self.name = name
    }

    func enqueue(_ job: consuming ExecutorJob) {
        world.enqueue(UnownedJob(job), on: self)
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }

    var pendingJobs: Int { jobs.count }

    /// Runs a timer's body now, or when the process resumes; never once
    /// it is dead (its timers died with it).
    func fire(_ body: @escaping () -> Void) {
        switch state {
        case .running: body()
        case .paused: deferred.append(body)
        case .dead: return
        }
    }

    /// Starts a task on this executor.
    @discardableResult
    func spawn(_ body: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        Task(executorPreference: self) { await body() }
    }
}

final class SimTimer: @unchecked Sendable {
    let dueNs: Int64
    let id: UInt64
    let fire: () -> Void
    var cancelled = false

    init(dueNs: Int64, id: UInt64, fire: @escaping () -> Void) {
        self.dueNs = dueNs
        self.id = id
        self.fire = fire
    }

    func cancel() { cancelled = true }
}

/// A binary min-heap of timers by (due, id): ties fire in the order set.
struct TimerHeap {
    private var items: [SimTimer] = []

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    var peek: SimTimer? { items.first }

    private static func less(_ a: SimTimer, _ b: SimTimer) -> Bool {
        a.dueNs != b.dueNs ? a.dueNs < b.dueNs : a.id < b.id
    }

    mutating func push(_ timer: SimTimer) {
        items.append(timer)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.less(items[child], items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> SimTimer? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count && Self.less(items[left], items[smallest]) { smallest = left }
            if right < items.count && Self.less(items[right], items[smallest]) { smallest = right }
            guard smallest != parent else { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}
