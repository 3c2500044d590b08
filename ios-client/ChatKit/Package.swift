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
        // The app's models (session, settings, list order): everything of ChatApp but the views.
        .library(name: "ChatAppCore", targets: ["ChatAppCore"]),
        .executable(name: "chatkit-cli", targets: ["chatkit-cli"]),
    ],
    targets: [
        .target(name: "ChatKit"),
        .target(name: "ChatAppCore", dependencies: [
            "ChatKit",
            .target(name: "SwiftThreadingShim", condition: .when(platforms: [.linux])),
        ]),
        // Linux only: a symbol Debian's Swift 6.0.3 runtime lacks; see its shim.c.
        .target(name: "SwiftThreadingShim"),
        // A terminal client on the real ChatKit stack, for people and the end-to-end tests.
        .executableTarget(name: "chatkit-cli", dependencies: ["ChatKit"]),
        // One test target for both libraries: the app's model tests reuse ChatKit's fakes.
        .testTarget(name: "ChatKitTests", dependencies: ["ChatKit", "ChatAppCore"]),
    ],
    swiftLanguageModes: [.v6]
)
