import SwiftUI
import UIKit
import UserNotifications
import ChatAppCore

/// The UIKit side of push notifications: the device token APNs gives the app, the failure to get
/// one, and the notification center's delegate (a notification arriving in the foreground, a
/// notification tapped). Everything it learns goes to `AppModel` (ChatAppCore), which decides.
@MainActor
final class AppDelegate: NSObject, UIApplicationDelegate, UNUserNotificationCenterDelegate {
    let model = AppModel()

    func application(
        _ application: UIApplication,
        didFinishLaunchingWithOptions launchOptions: [UIApplication.LaunchOptionsKey: Any]? = nil
    ) -> Bool {
        // Set before launch ends, so that the tap that launched the app is delivered.
        UNUserNotificationCenter.current().delegate = self
        return true
    }

    // MARK: - APNs token

    func application(_ application: UIApplication, didRegisterForRemoteNotificationsWithDeviceToken deviceToken: Data) {
        model.push.didReceiveDeviceToken(deviceToken)
    }

    func application(_ application: UIApplication, didFailToRegisterForRemoteNotificationsWithError error: any Error) {
        model.push.didFailToRegister(error)
    }

    // MARK: - UNUserNotificationCenterDelegate

    /// A notification while the app is in the foreground: shown, unless its conversation is on
    /// screen already.
    nonisolated func userNotificationCenter(
        _ center: UNUserNotificationCenter,
        willPresent notification: UNNotification
    ) async -> UNNotificationPresentationOptions {
        let channelID = PushPayload.channelID(in: notification.request.content.userInfo)
        let shows = await MainActor.run { model.shouldPresentNotification(channelID: channelID) }
        return shows ? [.banner, .list, .sound] : []
    }

    /// A notification tapped: open its conversation (`channel_id` in the payload).
    nonisolated func userNotificationCenter(
        _ center: UNUserNotificationCenter,
        didReceive response: UNNotificationResponse
    ) async {
        guard response.actionIdentifier == UNNotificationDefaultActionIdentifier else { return }
        let channelID = PushPayload.channelID(in: response.notification.request.content.userInfo)
        await MainActor.run { model.openNotification(channelID: channelID) }
    }
}

/// Asking for permission to notify, and registering with APNs.
@MainActor
enum PushPermission {
    /// After sign-in (the conversation list appearing): asks once, while the system has no
    /// answer yet, then registers with APNs whenever notifications are allowed. Registering at
    /// every launch is what Apple asks: the token can change, and the OS hands it over again.
    static func requestAndRegister() async {
        let allowed: Bool
        switch await authorizationStatus() {
        case .notDetermined:
            allowed = await requestAuthorization()
        case .authorized, .provisional, .ephemeral:
            allowed = true
        case .denied:
            allowed = false
        @unknown default:
            allowed = false
        }
        if allowed {
            UIApplication.shared.registerForRemoteNotifications()
        }
    }

    /// Whether the user allowed notifications (iOS Settings may have changed it since).
    nonisolated static func authorizationStatus() async -> UNAuthorizationStatus {
        await UNUserNotificationCenter.current().notificationSettings().authorizationStatus
    }

    nonisolated private static func requestAuthorization() async -> Bool {
        do {
            return try await UNUserNotificationCenter.current().requestAuthorization(options: [.alert, .badge, .sound])
        } catch {
            return false
        }
    }
}
