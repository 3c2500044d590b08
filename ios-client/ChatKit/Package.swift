// swift-tools-version: 6.0
// ChatKit: everything of the iOS client that is not UI (wire models, REST client, token handling,
// realtime connection, message merge store). Builds on Apple platforms and on Linux.
import PackageDescription

let package = Package(
    name: "ChatKit",
    platforms: [
        .iOS(.v17),
        .macOS(.v14),
    ],
    products: [
        .library(name: "ChatKit", targets: ["ChatKit"]),
    ],
    targets: [
        .target(name: "ChatKit"),
        .testTarget(name: "ChatKitTests", dependencies: ["ChatKit"]),
    ],
    swiftLanguageModes: [.v6]
)
