import ChatKit
import Foundation

/// What the app's models need from the outside world, in one value: the device's real services
/// in the app (`.live`), fakes in tests.
public struct ChatEnvironment: Sendable {
    public var http: any HTTPClient
    public var transport: any Transport
    public var realtime: RealtimeConfiguration
    /// Where a server's session is kept.
    public var tokenStore: @Sendable (ServerEndpoint) -> any TokenStore
    /// Reports the network coming back (`NWPathMonitor`); nil where there is none.
    public var network: @Sendable () -> (any NetworkPathMonitor)?
    /// Makes picked files ready to upload (HEIC photos to JPEG).
    public var attachmentPreparer: any AttachmentPreparing

    public init(
        http: any HTTPClient,
        transport: any Transport,
        realtime: RealtimeConfiguration = RealtimeConfiguration(),
        tokenStore: @escaping @Sendable (ServerEndpoint) -> any TokenStore,
        network: @escaping @Sendable () -> (any NetworkPathMonitor)? = { nil },
        attachmentPreparer: any AttachmentPreparing = ImagePreparation()
    ) {
        self.http = http
        self.transport = transport
        self.realtime = realtime
        self.tokenStore = tokenStore
        self.network = network
        self.attachmentPreparer = attachmentPreparer
    }

    /// URLSession, the Keychain (one entry per server) and NWPathMonitor. Without the Keychain
    /// (Linux) sessions are kept in memory only.
    public static var live: ChatEnvironment {
        ChatEnvironment(
            http: URLSessionHTTPClient(),
            transport: URLSessionTransport(),
            tokenStore: { endpoint in
                #if canImport(Security)
                KeychainTokenStore(
                    service: (Bundle.main.bundleIdentifier ?? "ChatApp") + ".session",
                    account: endpoint.baseURL.absoluteString
                )
                #else
                InMemoryTokenStore()
                #endif
            },
            network: { SystemNetworkPathMonitor.make() }
        )
    }
}
