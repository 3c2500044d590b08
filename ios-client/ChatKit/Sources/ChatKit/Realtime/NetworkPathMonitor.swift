import Foundation
#if canImport(Network)
import Network
#endif

/// Tells the realtime client when the device's network comes back, so it reconnects at once
/// rather than after the rest of its backoff (up to 30 s). `SystemNetworkPathMonitor` is the
/// real one on Apple platforms; tests use a fake.
public protocol NetworkPathMonitor: Sendable {
    /// `true` each time a usable path appears, `false` when the last one goes away. A new
    /// stream per call.
    func availabilityChanges() -> AsyncStream<Bool>
}

/// `NWPathMonitor` on Apple platforms. Linux has no equivalent in Foundation: there `make()`
/// returns nil and only the backoff (and `reconnectNow()`) bring the connection back.
public enum SystemNetworkPathMonitor {
    public static func make() -> (any NetworkPathMonitor)? {
        #if canImport(Network)
        return NWNetworkPathMonitor()
        #else
        return nil
        #endif
    }
}

#if canImport(Network)
/// Reports `NWPath.status` changes; repeated statuses are reported once.
struct NWNetworkPathMonitor: NetworkPathMonitor {
    func availabilityChanges() -> AsyncStream<Bool> {
        AsyncStream { continuation in
            let monitor = NWPathMonitor()
            let queue = DispatchQueue(label: "ChatKit.NetworkPathMonitor")
            let last = LastStatus()
            monitor.pathUpdateHandler = { path in
                let available = path.status == .satisfied
                if last.changed(to: available) {
                    continuation.yield(available)
                }
            }
            continuation.onTermination = { _ in monitor.cancel() }
            monitor.start(queue: queue)
        }
    }

    /// Only touched on the monitor's serial queue.
    private final class LastStatus: @unchecked Sendable {
        private var value: Bool?

        func changed(to new: Bool) -> Bool {
            defer { value = new }
            return value != new
        }
    }
}
#endif
