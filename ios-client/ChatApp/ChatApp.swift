import SwiftUI
import ChatAppCore

@main
struct ChatApp: App {
    /// Owns the app's model, so that the APNs token and notification taps (which UIKit hands to
    /// the app delegate) reach it.
    @UIApplicationDelegateAdaptor(AppDelegate.self) private var appDelegate

    var body: some Scene {
        WindowGroup {
            RootView()
                .environment(appDelegate.model)
        }
    }
}
