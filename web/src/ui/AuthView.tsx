import { useEffect, useRef, useState } from "preact/hooks";
import type { ChatApp } from "../app/client";
import { describe } from "../lib/errors";
import { ApiError } from "../lib/errors";
import { displayNameProblem, passwordProblem, usernameProblem } from "../lib/validate";
import { Limits } from "../lib/types";
import { Logo } from "./icons";

type Mode = "login" | "register";

interface FieldErrors {
  username?: string;
  password?: string;
  displayName?: string;
}

export function AuthView({ app, message }: { app: ChatApp; message?: string }) {
  const [mode, setMode] = useState<Mode>("login");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [fields, setFields] = useState<FieldErrors>({});
  const headingRef = useRef<HTMLHeadingElement>(null);
  const userRef = useRef<HTMLInputElement>(null);
  const passRef = useRef<HTMLInputElement>(null);
  const nameRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    userRef.current?.focus();
  }, []);

  const switchMode = (m: Mode) => {
    setMode(m);
    setError(null);
    setFields({});
    headingRef.current?.focus();
  };

  const onSubmit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    const u = username.trim();
    const errs: FieldErrors = {};
    if (mode === "register") {
      errs.username = usernameProblem(u) ?? undefined;
      errs.password = passwordProblem(password) ?? undefined;
      errs.displayName = displayNameProblem(displayName.trim()) ?? undefined;
    } else {
      if (!u) errs.username = "Enter your username.";
      if (!password) errs.password = "Enter your password.";
    }
    setFields(errs);
    if (errs.username || errs.password || errs.displayName) {
      setError(null);
      (errs.username ? userRef : errs.displayName ? nameRef : passRef).current?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      if (mode === "login") await app.login(u, password);
      else await app.register(u, password, displayName.trim() || undefined);
    } catch (err) {
      setBusy(false);
      setError(describe(err));
      if (err instanceof ApiError && err.code === "username_taken") {
        setFields({ username: "This username is taken." });
        userRef.current?.focus();
      } else if (err instanceof ApiError && err.code === "invalid_credentials") {
        passRef.current?.select();
        passRef.current?.focus();
      }
    }
  };

  const title = mode === "login" ? "Log in" : "Create an account";

  return (
    <main class="auth" id="main">
      <div class="auth-card">
        <p class="brand brand--large" aria-hidden="true">
          <Logo size={32} /> Chat
        </p>
        <div class="segmented" role="group" aria-label="Choose">
          <button type="button" aria-pressed={mode === "login"} onClick={() => switchMode("login")}>
            Log in
          </button>
          <button type="button" aria-pressed={mode === "register"} onClick={() => switchMode("register")}>
            Create account
          </button>
        </div>
        <h1 ref={headingRef} tabIndex={-1}>
          {title}
        </h1>
        {message && !error && (
          <p class="info" role="status">
            {message}
          </p>
        )}
        {error && (
          <p class="error" role="alert" id="auth-error">
            {error}
          </p>
        )}
        <form onSubmit={onSubmit} noValidate aria-describedby={error ? "auth-error" : undefined}>
          <div class="field">
            <label for="auth-username">Username</label>
            <input
              id="auth-username"
              ref={userRef}
              name="username"
              autocomplete="username"
              autocapitalize="none"
              spellcheck={false}
              required
              maxLength={Limits.USERNAME_MAX}
              value={username}
              aria-invalid={fields.username ? true : undefined}
              aria-describedby={
                [mode === "register" ? "auth-username-hint" : "", fields.username ? "auth-username-err" : ""]
                  .filter(Boolean)
                  .join(" ") || undefined
              }
              onInput={(e) => setUsername(e.currentTarget.value)}
            />
            {mode === "register" && (
              <p class="hint" id="auth-username-hint">
                3 to 32 letters, digits, dots, underscores or hyphens.
              </p>
            )}
            {fields.username && (
              <p class="field-error" id="auth-username-err">
                {fields.username}
              </p>
            )}
          </div>
          {mode === "register" && (
            <div class="field">
              <label for="auth-display">
                Display name <span class="optional">(optional)</span>
              </label>
              <input
                id="auth-display"
                ref={nameRef}
                name="display_name"
                autocomplete="nickname"
                maxLength={Limits.DISPLAY_NAME_MAX}
                value={displayName}
                aria-invalid={fields.displayName ? true : undefined}
                aria-describedby={fields.displayName ? "auth-display-err" : "auth-display-hint"}
                onInput={(e) => setDisplayName(e.currentTarget.value)}
              />
              <p class="hint" id="auth-display-hint">
                How others see you. Your username is used if you leave it empty.
              </p>
              {fields.displayName && (
                <p class="field-error" id="auth-display-err">
                  {fields.displayName}
                </p>
              )}
            </div>
          )}
          <div class="field">
            <label for="auth-password">Password</label>
            <input
              id="auth-password"
              ref={passRef}
              name="password"
              type="password"
              autocomplete={mode === "login" ? "current-password" : "new-password"}
              required
              value={password}
              aria-invalid={fields.password ? true : undefined}
              aria-describedby={
                [mode === "register" ? "auth-password-hint" : "", fields.password ? "auth-password-err" : ""]
                  .filter(Boolean)
                  .join(" ") || undefined
              }
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
            {mode === "register" && (
              <p class="hint" id="auth-password-hint">
                At least 8 characters.
              </p>
            )}
            {fields.password && (
              <p class="field-error" id="auth-password-err">
                {fields.password}
              </p>
            )}
          </div>
          <button class="primary wide" type="submit" disabled={busy} aria-busy={busy}>
            {busy ? (mode === "login" ? "Logging in…" : "Creating account…") : title}
          </button>
        </form>
      </div>
    </main>
  );
}
