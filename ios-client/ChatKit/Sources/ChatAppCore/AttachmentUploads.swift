import ChatKit
import Foundation
import Observation

/// Why an upload stopped, in words for a person, and whether trying again may help.
public struct AttachmentUploadFailure: Sendable, Hashable {
    public var message: String
    /// False for a file the server will never take (its type, size or name): it can only be
    /// removed.
    public var isRetryable: Bool

    public init(message: String, isRetryable: Bool) {
        self.message = message
        self.isRetryable = isRetryable
    }
}

/// One file of the composer's strip.
public struct AttachmentUploadItem: Sendable, Hashable, Identifiable {
    public enum State: Sendable, Hashable {
        /// Being read or converted (a HEIC photo to JPEG).
        case preparing
        /// Declared, PUT to the store (`fractionCompleted`: of its bytes sent), completed.
        case uploading(fractionCompleted: Double)
        /// Ready to go with the message.
        case uploaded(MessageAttachment)
        /// Refused before anything was sent, or stopped on an error (`isRetryable`: Retry).
        case failed(AttachmentUploadFailure)
    }

    public let id: UUID
    /// As the message will show it (`.jpg` once a HEIC photo is converted).
    public var name: String
    public var contentType: String?
    /// Bytes.
    public var size: UInt64
    public var state: State

    /// An image (its icon in the strip).
    public var isImage: Bool {
        contentType?.hasPrefix("image/") ?? false
    }

    /// 0 to 1: how much of it is uploaded (1 once uploaded).
    public var fractionCompleted: Double {
        switch state {
        case .preparing, .failed: 0
        case .uploading(let fraction): fraction
        case .uploaded: 1
        }
    }

    /// Preparing or uploading: the message waits for it.
    public var isInFlight: Bool {
        switch state {
        case .preparing, .uploading: true
        case .uploaded, .failed: false
        }
    }

    public var failure: AttachmentUploadFailure? {
        if case .failed(let failure) = state { return failure }
        return nil
    }

    public var attachment: MessageAttachment? {
        if case .uploaded(let attachment) = state { return attachment }
        return nil
    }
}

/// The files of one conversation's composer on their way to becoming a message's attachments
/// (docs/protocol.md, "REST: attachments"): each is prepared (`AttachmentPreparing`: a HEIC
/// photo becomes JPEG), checked as the server would check it (nothing is sent for a file it
/// would refuse), declared (`POST …/attachments`), PUT to the store with real byte progress
/// (`HTTPClient.upload`), and completed (`…/complete`). The message then carries the uploaded
/// ones, in the order they were picked (`ChatSession.sendComposed`).
///
/// Cancel (`remove`) stops the transfer (the task is cancelled, and with it the URLSession task)
/// and takes the file out. Retry starts again where it can: with a fresh upload URL for the same
/// upload (`…/upload-url`, the old URL may have expired) while the server still keeps it
/// (`Limits.uploadRenewableSecs`), otherwise by declaring the file again; after the bytes
/// arrived, by completing again. A store refusing a URL (403: it expired, the app slept) gets
/// one new URL at once.
@MainActor @Observable
public final class AttachmentUploads {
    public let channelID: String
    /// In the order the files were picked.
    public private(set) var items: [AttachmentUploadItem] = []
    /// Why files just picked were not added (more than a message carries); the composer shows it
    /// until dismissed (set to nil).
    public var notice: String?

    private let api: APIClient
    private let preparer: any AttachmentPreparing
    private let now: @Sendable () -> Date

    /// Per item: what its upload needs and has reached.
    private struct Job {
        var file: PickedFile
        var task: Task<Void, Never>?
        /// The server's id, once declared, and when (the client's clock).
        var attachmentID: String?
        var declaredAt: Date?
        /// The store took the bytes: what is left is completing.
        var bytesStored = false
    }

    @ObservationIgnored private var jobs: [UUID: Job] = [:]

    /// A declared upload is renewed until this long before the server abandons it; later it is
    /// declared again.
    static let renewalMargin: TimeInterval = 60

    public init(
        channelID: String,
        api: APIClient,
        preparer: any AttachmentPreparing = ImagePreparation(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.channelID = channelID
        self.api = api
        self.preparer = preparer
        self.now = now
    }

    // MARK: - What the composer shows

    /// A file is being prepared or uploaded: Send waits.
    public var isBusy: Bool {
        items.contains { $0.isInFlight }
    }

    /// What the message will carry: the uploaded files, in the order they were picked.
    public var readyAttachments: [MessageAttachment] {
        items.compactMap(\.attachment)
    }

    /// Files that may still be picked for this message.
    public var remainingCapacity: Int {
        max(0, Limits.attachmentsPerMessageMax - items.count)
    }

    /// Whether `draft` and the uploaded files make a message that may be sent now: nothing in
    /// flight, and a valid body or, with files, a valid caption (an empty one included).
    public func canSend(_ draft: String) -> Bool {
        guard !isBusy else { return false }
        let body = draft.trimmingCharacters(in: .whitespacesAndNewlines)
        return Limits.isValidMessage(body: body, attachmentCount: readyAttachments.count)
    }

    // MARK: - Picking

    /// Adds a picked file and starts its upload. A file the server would refuse (type, size,
    /// name) stays in the strip, failed and not retryable, and nothing is sent for it; one more
    /// than a message carries is not added (`notice`).
    @discardableResult
    public func add(_ file: PickedFile) -> UUID? {
        guard remainingCapacity > 0 else {
            notice = "A message can carry at most \(Limits.attachmentsPerMessageMax) files: \(file.name) was not added."
            return nil
        }
        let id = UUID()
        let planned = preparer.plan(for: file)
        var item = AttachmentUploadItem(
            id: id,
            name: planned.name,
            contentType: planned.contentType,
            size: UInt64(file.data.count),
            state: .preparing
        )
        // The type and name are known now, and the size unless the photo is converted first
        // (checked again once prepared).
        if let problem = AttachmentValidation.problem(name: planned.name, contentType: planned.contentType, size: planned.changesBytes ? 1 : item.size) {
            item.state = .failed(AttachmentUploadFailure(message: problem, isRetryable: false))
            items.append(item)
            return id
        }
        items.append(item)
        jobs[id] = Job(file: file)
        jobs[id]?.task = Task { await self.prepareAndUpload(id, file) }
        return id
    }

    /// Adds the local file at `url` (from the Files picker, with its security scope open while
    /// this runs): its size is checked before it is read, so a huge file is refused without
    /// being loaded.
    @discardableResult
    public func add(fileAt url: URL, contentType: String? = nil) -> UUID? {
        let name = url.lastPathComponent
        guard remainingCapacity > 0 else {
            notice = "A message can carry at most \(Limits.attachmentsPerMessageMax) files: \(name) was not added."
            return nil
        }
        let size = (try? url.resourceValues(forKeys: [.fileSizeKey]).fileSize).map { UInt64(max(0, $0)) }
        if let size, size > Limits.attachmentMaxBytes {
            return addRefused(name: name, contentType: contentType, size: size)
        }
        do {
            return add(PickedFile(name: name, contentType: contentType, data: try Data(contentsOf: url)))
        } catch {
            let id = UUID()
            items.append(AttachmentUploadItem(
                id: id,
                name: name,
                contentType: contentType,
                size: size ?? 0,
                state: .failed(AttachmentUploadFailure(message: "\(name) could not be read.", isRetryable: false))
            ))
            return id
        }
    }

    private func addRefused(name: String, contentType: String?, size: UInt64) -> UUID {
        let id = UUID()
        let problem = AttachmentValidation.problem(name: name, contentType: contentType ?? AttachmentContentType.forFileName(name), size: size)
        items.append(AttachmentUploadItem(
            id: id,
            name: name,
            contentType: contentType,
            size: size,
            state: .failed(AttachmentUploadFailure(message: problem ?? "\(name) can't be sent.", isRetryable: false))
        ))
        return id
    }

    // MARK: - Cancel, retry

    /// Cancels the file's upload if it is under way (the transfer stops) and takes it out of the
    /// strip. An upload the server was told of and never completed is removed by the server.
    public func remove(_ id: UUID) {
        jobs.removeValue(forKey: id)?.task?.cancel()
        items.removeAll { $0.id == id }
    }

    /// Cancels every upload and empties the strip (leaving the conversation for good, signing
    /// out).
    public func removeAll() {
        for job in jobs.values {
            job.task?.cancel()
        }
        jobs.removeAll()
        items.removeAll()
    }

    /// Starts a failed upload again (a retryable failure only).
    public func retry(_ id: UUID) {
        guard let failure = item(id)?.failure, failure.isRetryable, jobs[id] != nil else { return }
        setState(id, .uploading(fractionCompleted: 0))
        jobs[id]?.task = Task { await self.upload(id) }
    }

    /// The uploaded files, taken out of the strip for the message about to be sent, in the
    /// order they were picked. Failed ones stay (to retry or remove).
    public func takeReadyAttachments() -> [MessageAttachment] {
        let ready = items.filter { $0.attachment != nil }
        for item in ready {
            jobs.removeValue(forKey: item.id)
        }
        items.removeAll { $0.attachment != nil }
        return ready.compactMap(\.attachment)
    }

    // MARK: - The upload

    private func prepareAndUpload(_ id: UUID, _ file: PickedFile) async {
        let prepared: PickedFile
        do {
            prepared = try await preparer.prepare(file)
        } catch {
            guard !Task.isCancelled else { return }
            fail(id, AttachmentUploadFailure(message: error.localizedDescription, isRetryable: false))
            return
        }
        guard !Task.isCancelled, let index = items.firstIndex(where: { $0.id == id }) else { return }
        let contentType = prepared.resolvedContentType
        items[index].name = prepared.name
        items[index].contentType = contentType
        items[index].size = UInt64(prepared.data.count)
        jobs[id]?.file = prepared
        if let problem = AttachmentValidation.problem(name: prepared.name, contentType: contentType, size: UInt64(prepared.data.count)) {
            fail(id, AttachmentUploadFailure(message: problem, isRetryable: false))
            return
        }
        setState(id, .uploading(fractionCompleted: 0))
        await upload(id)
    }

    private func upload(_ id: UUID) async {
        do {
            let attachment = try await transfer(id)
            guard !Task.isCancelled else { return }
            setState(id, .uploaded(MessageAttachment(attachment)))
        } catch {
            // Cancelled: the item is gone already.
            guard !Task.isCancelled, !(error is CancellationError) else { return }
            fail(id, Self.failure(for: error))
        }
    }

    /// Declares (or renews), PUTs and completes, from wherever the last attempt stopped.
    private func transfer(_ id: UUID) async throws -> Attachment {
        guard let job = jobs[id] else { throw CancellationError() }
        if job.bytesStored, let attachmentID = job.attachmentID {
            do {
                return try await api.completeAttachment(attachmentID, inChannel: channelID)
            } catch let error as ChatError
                where error.serverCode == APIErrorCode.uploadIncomplete || error.serverCode == APIErrorCode.uploadMismatch {
                // The bytes are not there (any more): send them again.
                jobs[id]?.bytesStored = false
            }
        }
        let data = job.file.data
        var target = try await uploadTarget(id)
        do {
            try await put(id, data, to: target.upload)
        } catch let error as ChatError where Self.isStoreRefusal(error) {
            // The URL expired between being given and used: one new URL at once.
            target = try await api.renewUploadURL(ofAttachment: target.id, inChannel: channelID)
            try await put(id, data, to: target.upload)
        }
        jobs[id]?.bytesStored = true
        return try await api.completeAttachment(target.id, inChannel: channelID)
    }

    /// A fresh upload URL: renewed for the upload already declared while the server keeps it,
    /// else from declaring the file (again).
    private func uploadTarget(_ id: UUID) async throws -> AttachmentUpload {
        guard let job = jobs[id] else { throw CancellationError() }
        let window = TimeInterval(Limits.uploadRenewableSecs) - Self.renewalMargin
        if let attachmentID = job.attachmentID, let declaredAt = job.declaredAt, now().timeIntervalSince(declaredAt) < window {
            do {
                return try await api.renewUploadURL(ofAttachment: attachmentID, inChannel: channelID)
            } catch let error as ChatError where error.serverCode == APIErrorCode.unknownAttachment {
                // Abandoned (or swept) after all: declare it again.
            }
        }
        let file = job.file
        let declared = CreateAttachment(
            name: file.name,
            contentType: file.resolvedContentType ?? "application/octet-stream",
            size: UInt64(file.data.count)
        )
        let created = try await api.createAttachment(declared, inChannel: channelID)
        jobs[id]?.attachmentID = created.id
        jobs[id]?.declaredAt = now()
        jobs[id]?.bytesStored = false
        return created
    }

    /// One PUT, its progress applied in the order the HTTP stack reports it and never going
    /// back; all of it applied before this returns.
    private func put(_ id: UUID, _ data: Data, to request: UploadRequest) async throws {
        setState(id, .uploading(fractionCompleted: 0))
        let (reports, continuation) = AsyncStream<TransferProgress>.makeStream()
        let applying = Task {
            for await progress in reports {
                self.noteProgress(id, progress)
            }
        }
        do {
            try await api.putAttachment(data, to: request) { progress in
                continuation.yield(progress)
            }
        } catch {
            continuation.finish()
            applying.cancel()
            throw error
        }
        continuation.finish()
        await applying.value
    }

    private func noteProgress(_ id: UUID, _ progress: TransferProgress) {
        guard let index = items.firstIndex(where: { $0.id == id }),
              case .uploading(let current) = items[index].state,
              progress.fractionCompleted > current
        else { return }
        items[index].state = .uploading(fractionCompleted: progress.fractionCompleted)
    }

    // MARK: - State

    private func item(_ id: UUID) -> AttachmentUploadItem? {
        items.first { $0.id == id }
    }

    private func setState(_ id: UUID, _ state: AttachmentUploadItem.State) {
        guard let index = items.firstIndex(where: { $0.id == id }) else { return }
        items[index].state = state
    }

    private func fail(_ id: UUID, _ failure: AttachmentUploadFailure) {
        setState(id, .failed(failure))
    }

    /// The object store refused the PUT (403: the URL expired, or the bytes were not the
    /// declared ones); its refusals carry no contract error code.
    private nonisolated static func isStoreRefusal(_ error: ChatError) -> Bool {
        if case .server(let refusal) = error { return refusal.status == 403 && refusal.code.hasPrefix("http_") }
        return false
    }

    /// Words for an upload's error, and whether trying again may help (no answer, busy,
    /// throttled, too many uploads at once, an upload the server forgot) or not (a file it will
    /// never take, a conversation the user left, a session that ended).
    nonisolated static func failure(for error: any Error) -> AttachmentUploadFailure {
        guard let chatError = error as? ChatError else {
            return AttachmentUploadFailure(message: error.localizedDescription, isRetryable: true)
        }
        switch chatError {
        case .network:
            return AttachmentUploadFailure(message: "The upload was interrupted. Check your connection and try again.", isRetryable: true)
        case .server(let refusal):
            switch refusal.code {
            case APIErrorCode.attachmentTooLarge:
                return AttachmentUploadFailure(message: "The file is too large for the server.", isRetryable: false)
            case APIErrorCode.unsupportedType:
                return AttachmentUploadFailure(message: "The server does not take files of this type.", isRetryable: false)
            case "invalid_name":
                return AttachmentUploadFailure(message: "The file's name can't be used. Rename it and try again.", isRetryable: false)
            case "invalid_field":
                return AttachmentUploadFailure(message: "The server did not accept this file.", isRetryable: false)
            case APIErrorCode.notAMember, APIErrorCode.channelNotFound:
                return AttachmentUploadFailure(message: "You are not a member of this conversation any more.", isRetryable: false)
            case APIErrorCode.tooManyUploads:
                return AttachmentUploadFailure(message: "Too many uploads at once. Wait a moment and try again.", isRetryable: true)
            case APIErrorCode.unknownAttachment:
                return AttachmentUploadFailure(message: "The server no longer knows this upload. Try again.", isRetryable: true)
            default:
                if isStoreRefusal(chatError) {
                    return AttachmentUploadFailure(message: "The storage refused the upload. Try again.", isRetryable: true)
                }
                let retryable = refusal.status == 408 || refusal.status == 429 || refusal.status >= 500
                    || refusal.code == APIErrorCode.uploadMismatch || refusal.code == APIErrorCode.uploadIncomplete
                return AttachmentUploadFailure(message: refusal.message, isRetryable: retryable)
            }
        case .sessionExpired, .notSignedIn:
            return AttachmentUploadFailure(message: chatError.localizedDescription, isRetryable: false)
        case .invalidResponse, .invalidServerURL, .fileNotAttachable:
            return AttachmentUploadFailure(message: chatError.localizedDescription, isRetryable: true)
        }
    }
}
