// Errors from the server (REST bodies and WebSocket `error` frames) in words a person understands.

/** An error answer of the REST API: `{"error": {"code", "message"}}` with its HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly serverMessage: string,
  ) {
    super(serverMessage || code || `HTTP ${status}`);
    this.name = "ApiError";
  }
}

/** Code used for failures where no answer came back at all. */
export const NETWORK_ERROR = "network_error";

const MESSAGES: Record<string, string> = {
  // Accounts and sessions
  username_taken: "That username is already taken. Please choose another one.",
  invalid_credentials: "The username or password is not right. Please try again.",
  invalid_username:
    "Usernames are 3 to 32 characters long and use only letters, digits, dots (.), underscores (_) and hyphens (-).",
  invalid_password: "Passwords need 8 to 1024 characters.",
  password_too_short: "Passwords need at least 8 characters.",
  weak_password: "Passwords need at least 8 characters.",
  invalid_display_name: "Display names can be at most 64 characters long.",
  unauthorized: "Your session has ended. Please log in again.",
  invalid_token: "Your session has ended. Please log in again.",
  token_expired: "Your session has ended. Please log in again.",
  invalid_refresh_token: "Your session has ended. Please log in again.",
  refresh_token_reused: "Your session was ended for safety (it was used elsewhere). Please log in again.",
  missing_token: "Please log in first.",
  // Channels and people
  not_a_member: "You are not a member of this conversation. Join it first.",
  forbidden: "You are not allowed to do that.",
  not_found: "That could not be found. It may have been removed.",
  channel_not_found: "That conversation does not exist any more.",
  unknown_channel: "That conversation does not exist any more.",
  user_not_found: "That person could not be found.",
  unknown_user: "That person could not be found.",
  invalid_channel_name: "Channel names are 1 to 80 characters long.",
  invalid_name: "Channel names are 1 to 80 characters long, without control characters.",
  channel_name_taken: "A channel with that name exists already (names ignore upper and lower case). Find it under Browse channels, or choose another name.",
  invalid_sort: "The app asked for an unknown order. Please reload the page.",
  invalid_cursor: "The list changed in a way the app did not expect. Please reload it.",
  invalid_description: "Descriptions can be at most 1000 characters long.",
  cannot_dm_self: "You can't start a direct conversation with yourself.",
  invalid_user: "You can't start a direct conversation with yourself.",
  invalid_id: "That link or id is not valid.",
  message_not_found: "That message could not be found any more.",
  invalid_limit: "The app asked for too many messages at once. Please reload the page.",
  unsupported_media_type: "The app sent something the server did not understand. Please reload the page.",
  // Messages
  invalid_body: "Messages must be 1 to 4000 characters long and not only spaces.",
  body_too_long: "Messages can be at most 4000 characters long.",
  invalid_client_msg_id: "The app sent a message the server could not accept. Please try again.",
  malformed_frame: "The app sent something the server did not understand. Please reload the page.",
  unknown_message: "A message the app asked about is unknown to the server.",
  // Edits, deletes, reactions, replies
  not_author: "You can only edit your own messages, and delete your own or those in a channel you created.",
  message_deleted: "That message was deleted, so it can't be changed or answered any more.",
  invalid_emoji: "That reaction can't be used. Pick another one.",
  invalid_client_event_id: "The app sent a change the server could not accept. Please try again.",
  invalid_field: "Please check what you entered and try again.",
  // Attachments (the upload chips have their own words: lib/uploads.ts)
  invalid_attachment:
    "A file of this message can't be sent: its upload did not finish, or it went with another message. Discard it and attach the file again.",
  attachment_too_large: "The file is too large.",
  unsupported_type: "Files of this type can't be attached.",
  too_many_uploads: "You have too many unfinished uploads. Wait a little, then try again.",
  unknown_attachment: "That file is not available any more.",
  upload_incomplete: "The file did not arrive completely. Try again.",
  upload_mismatch: "The file arrived changed. Try again.",
  // Limits and outages
  payload_too_large: "That is too large to send.",
  too_large: "That is too large to send.",
  rate_limited: "You're going a little fast. Please wait a moment and try again.",
  too_many_requests: "You're going a little fast. Please wait a moment and try again.",
  unavailable: "The service is busy or restarting. Please try again in a moment.",
  service_unavailable: "The service is busy or restarting. Please try again in a moment.",
  internal: "Something went wrong on our side. Please try again.",
  internal_error: "Something went wrong on our side. Please try again.",
  [NETWORK_ERROR]: "Can't reach the server. Check your connection and try again.",
  timeout: "The server took too long to answer. Please try again.",
};

/** Codes that say "your input was not accepted": the server's own message is the most precise. */
const VALIDATION = /^(validation|invalid_|bad_request|missing_|malformed)/;

function byStatus(status: number): string {
  if (status === 400 || status === 422) return "Please check what you entered and try again.";
  if (status === 401) return "Your session has ended. Please log in again.";
  if (status === 403) return "You are not allowed to do that.";
  if (status === 404) return "That could not be found.";
  if (status === 409) return "That conflicts with something that already exists.";
  if (status === 413) return "That is too large to send.";
  if (status === 429) return "You're going a little fast. Please wait a moment and try again.";
  if (status >= 500) return "The server had a problem. Please try again in a moment.";
  return "Something went wrong. Please try again.";
}

/** Adds a final full stop and capital letter to a server message if it lacks them. */
function sentence(s: string): string {
  const t = s.trim();
  if (!t) return t;
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

/**
 * Words for a person: a known code's own sentence; for an unknown code (a validation error such
 * as `validation_error`, whose detail only the server knows, or anything else), the server's
 * message; failing that, a sentence for the HTTP status.
 */
export function describeError(code: string | undefined, serverMessage?: string, status?: number): string {
  const c = (code ?? "").trim();
  if (c && Object.prototype.hasOwnProperty.call(MESSAGES, c)) return MESSAGES[c];
  if (serverMessage && serverMessage.trim()) return sentence(serverMessage);
  if (c && VALIDATION.test(c)) return "Please check what you entered and try again.";
  if (status) return byStatus(status);
  return "Something went wrong. Please try again.";
}

/** Describes anything thrown by the client code. */
export function describe(err: unknown): string {
  if (err instanceof ApiError) return describeError(err.code, err.serverMessage, err.status);
  if (err instanceof TypeError) return MESSAGES[NETWORK_ERROR]; // fetch() network failure
  if (err instanceof Error && err.message) return sentence(err.message);
  return "Something went wrong. Please try again.";
}
