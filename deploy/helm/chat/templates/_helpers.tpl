{{/*
Names, labels and the pieces every pod shares. Settings reach the services as CHAT__SECTION__KEY
environment variables (crates/chat-common/src/config.rs); secrets as files (the _FILE variants)
where the service reads one, else as env from a secretKeyRef: never inline in a pod spec.
*/}}

{{- define "chat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chat.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A component's object name: <fullname>-<component>, at most 63 characters. */}}
{{- define "chat.componentName" -}}
{{- printf "%s-%s" (include "chat.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chat.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chat.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of an object: call with (dict "root" $ "component" "gateway"). */}}
{{- define "chat.labels" -}}
helm.sh/chart: {{ include "chat.chart" .root }}
{{ include "chat.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: chat
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "chat.image" -}}
{{- $img := .Values.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/* The chart's own secret (values given inline, generated tokens). */}}
{{- define "chat.secretName" -}}
{{- include "chat.fullname" . }}
{{- end }}

{{- define "chat.listenHost" -}}
{{- if .Values.ipv6 }}[::]{{ else }}0.0.0.0{{ end }}
{{- end }}

{{/* Where the files of secrets are mounted. */}}
{{- define "chat.secretDir" -}}/run/chat-secrets{{- end }}

{{/*
The data of the chart's secret: every secret value given inline, and the JWT key and internal
token generated when neither given nor in an existing secret. A generated value is read back
from the release's secret on upgrades (lookup), so tokens stay valid. Rendered once per
template that needs it: keep it deterministic apart from the generation.
*/}}
{{- define "chat.secretData" -}}
{{- $v := .Values }}
{{- $data := dict }}
{{- $old := dict }}
{{- $found := lookup "v1" "Secret" .Release.Namespace (include "chat.secretName" .) }}
{{- if $found }}{{- $old = default (dict) $found.data }}{{- end }}
{{- if not $v.auth.existingSecret }}
{{- $jwt := $v.auth.jwtSecret }}
{{- if not $jwt }}{{- $jwt = (get $old "jwt_secret") | default "" | b64dec }}{{- end }}
{{- if not $jwt }}{{- $jwt = randAlphaNum 48 }}{{- end }}
{{- $_ := set $data "jwt_secret" $jwt }}
{{- $tok := $v.auth.internalToken }}
{{- if not $tok }}{{- $tok = (get $old "internal_token") | default "" | b64dec }}{{- end }}
{{- if not $tok }}{{- $tok = randAlphaNum 48 }}{{- end }}
{{- $_ := set $data "internal_token" $tok }}
{{- end }}
{{- if not $v.objects.existingSecret }}
{{- $_ := set $data "s3_access_key" (required "objects.accessKey is required when objects.existingSecret is empty" $v.objects.accessKey) }}
{{- $_ := set $data "s3_secret_key" (required "objects.secretKey is required when objects.existingSecret is empty" $v.objects.secretKey) }}
{{- end }}
{{- if not $v.postgres.existingSecret }}
{{- $_ := set $data "postgres_url" (required "postgres.url is required when postgres.existingSecret is empty" $v.postgres.url) }}
{{- end }}
{{- if and $v.notifier.enabled $v.notifier.apns.enabled (not $v.notifier.apns.existingSecret) }}
{{- $_ := set $data "apns_key.p8" (required "notifier.apns.p8 (the .p8 key's PEM) is required when notifier.apns.existingSecret is empty" $v.notifier.apns.p8) }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/* Where each secret value comes from: (secret name, key). */}}
{{- define "chat.jwtRef" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecret }}|{{ .Values.auth.jwtSecretKey }}{{ else }}{{ include "chat.secretName" . }}|jwt_secret{{ end }}
{{- end }}
{{- define "chat.internalRef" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecret }}|{{ .Values.auth.internalTokenKey }}{{ else }}{{ include "chat.secretName" . }}|internal_token{{ end }}
{{- end }}
{{- define "chat.s3AccessRef" -}}
{{- if .Values.objects.existingSecret }}{{ .Values.objects.existingSecret }}|{{ .Values.objects.accessKeyKey }}{{ else }}{{ include "chat.secretName" . }}|s3_access_key{{ end }}
{{- end }}
{{- define "chat.s3SecretRef" -}}
{{- if .Values.objects.existingSecret }}{{ .Values.objects.existingSecret }}|{{ .Values.objects.secretKeyKey }}{{ else }}{{ include "chat.secretName" . }}|s3_secret_key{{ end }}
{{- end }}
{{- define "chat.apnsRef" -}}
{{- if .Values.notifier.apns.existingSecret }}{{ .Values.notifier.apns.existingSecret }}|{{ .Values.notifier.apns.keyKey }}{{ else }}{{ include "chat.secretName" . }}|apns_key.p8{{ end }}
{{- end }}

{{/*
The secret files of a pod, as one projected volume: call with (dict "root" $ "files" (list
"jwt" "internal" ...)). File names: jwt_secret, internal_token, s3_access_key, s3_secret_key,
apns_key.p8.
*/}}
{{- define "chat.secretVolume" -}}
{{- $root := .root }}
{{- $refs := dict "jwt" (list (include "chat.jwtRef" $root) "jwt_secret") "internal" (list (include "chat.internalRef" $root) "internal_token") "s3access" (list (include "chat.s3AccessRef" $root) "s3_access_key") "s3secret" (list (include "chat.s3SecretRef" $root) "s3_secret_key") "apns" (list (include "chat.apnsRef" $root) "apns_key.p8") }}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
{{- range .files }}
{{- $r := get $refs . }}
{{- $parts := splitList "|" (index $r 0) }}
      - secret:
          name: {{ index $parts 0 }}
          items:
            - key: {{ index $parts 1 | quote }}
              path: {{ index $r 1 }}
{{- end }}
{{- end }}

{{/* Store settings as env: call with (dict "root" $ "stores" (list "postgres" "redis" ...)). */}}
{{- define "chat.storeEnv" -}}
{{- $v := .root.Values }}
{{- $root := .root }}
{{- range .stores }}
{{- if eq . "postgres" }}
- name: CHAT__POSTGRES__URL
  valueFrom:
    secretKeyRef:
      {{- if $v.postgres.existingSecret }}
      name: {{ $v.postgres.existingSecret }}
      key: {{ $v.postgres.urlKey | quote }}
      {{- else }}
      name: {{ include "chat.secretName" $root }}
      key: postgres_url
      {{- end }}
- name: CHAT__POSTGRES__MAX_CONNECTIONS
  value: {{ $v.postgres.maxConnections | int64 | quote }}
- name: CHAT__POSTGRES__STATEMENT_TIMEOUT_MS
  value: {{ $v.postgres.statementTimeoutMs | int64 | quote }}
{{- else if eq . "redis" }}
{{- if $v.redis.existingSecret }}
- name: CHAT__REDIS__URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.redis.existingSecret }}
      key: {{ $v.redis.urlKey | quote }}
{{- else }}
- name: CHAT__REDIS__URL
  value: {{ $v.redis.url | quote }}
{{- end }}
{{- else if eq . "kafka" }}
- name: CHAT__KAFKA__BROKERS
  value: {{ $v.kafka.brokers | quote }}
- name: CHAT__KAFKA__TOPIC
  value: {{ $v.kafka.topic | quote }}
- name: CHAT__KAFKA__PARTITIONS
  value: {{ $v.kafka.partitions | int64 | quote }}
- name: CHAT__KAFKA__REPLICATION_FACTOR
  value: {{ $v.kafka.replicationFactor | int64 | quote }}
- name: CHAT__KAFKA__MIN_INSYNC_REPLICAS
  value: {{ $v.kafka.minInsyncReplicas | int64 | quote }}
- name: CHAT__KAFKA__CONSUMER_GROUP
  value: {{ $v.kafka.consumerGroup | quote }}
{{- else if eq . "cassandra" }}
- name: CHAT__CASSANDRA__NODES
  value: {{ $v.cassandra.nodes | quote }}
- name: CHAT__CASSANDRA__KEYSPACE
  value: {{ $v.cassandra.keyspace | quote }}
- name: CHAT__CASSANDRA__REPLICATION_FACTOR
  value: {{ $v.cassandra.replicationFactor | int64 | quote }}
- name: CHAT__CASSANDRA__CONSISTENCY
  value: {{ $v.cassandra.consistency | quote }}
{{- else if eq . "objects" }}
- name: CHAT__OBJECTS__ENDPOINT
  value: {{ $v.objects.endpoint | quote }}
- name: CHAT__OBJECTS__PUBLIC_BASE
  value: {{ $v.objects.publicBase | quote }}
{{- with $v.objects.publicOrigins }}
- name: CHAT__OBJECTS__PUBLIC_ORIGINS
  value: {{ . | quote }}
{{- end }}
- name: CHAT__OBJECTS__BUCKET
  value: {{ $v.objects.bucket | quote }}
- name: CHAT__OBJECTS__REGION
  value: {{ $v.objects.region | quote }}
- name: CHAT__OBJECTS__ACCESS_KEY_FILE
  value: {{ include "chat.secretDir" $root }}/s3_access_key
- name: CHAT__OBJECTS__SECRET_KEY_FILE
  value: {{ include "chat.secretDir" $root }}/s3_secret_key
{{- else if eq . "auth" }}
- name: CHAT__AUTH__JWT_SECRET_FILE
  value: {{ include "chat.secretDir" $root }}/jwt_secret
- name: CHAT__AUTH__ACCESS_TTL_SECS
  value: {{ $v.auth.accessTtlSecs | int64 | quote }}
- name: CHAT__AUTH__REFRESH_TTL_SECS
  value: {{ $v.auth.refreshTtlSecs | int64 | quote }}
{{- else if eq . "internal" }}
- name: CHAT__INTERNAL__TOKEN_FILE
  value: {{ include "chat.secretDir" $root }}/internal_token
{{- else if eq . "telemetry" }}
- name: CHAT__TELEMETRY__JSON
  value: {{ $v.telemetry.json | quote }}
- name: CHAT__TELEMETRY__FILTER
  value: {{ $v.telemetry.filter | quote }}
{{- else }}
{{- fail (printf "chat.storeEnv: unknown group %s" .) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The pod's own name and IP (downward API), for ids and advertised addresses. */}}
{{- define "chat.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- end }}

{{/* Pod-level settings every workload shares: call with (dict "root" $ "c" .Values.gateway "component" "gateway"). */}}
{{- define "chat.podCommon" -}}
{{- $root := .root }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: false
# No SERVICE_HOST/PORT variables: the services read only CHAT__* settings.
enableServiceLinks: false
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if hasKey .c "topologySpreadConstraints" }}
topologySpreadConstraints:
{{- if .c.topologySpreadConstraints }}
  {{- toYaml .c.topologySpreadConstraints | nindent 2 }}
{{- else }}
  # Default: spread over nodes, best effort.
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "chat.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod template metadata. */}}
{{- define "chat.podMetadata" -}}
metadata:
  labels:
    {{- include "chat.labels" . | nindent 4 }}
  annotations:
    # Pods roll when their settings change.
    checksum/settings: {{ .settings | sha256sum | trunc 16 }}
    {{- with .root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with .c.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The container's securityContext and the /tmp volume mount. */}}
{{- define "chat.containerSecurity" -}}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end }}

{{- define "chat.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 16Mi
{{- end }}

{{/* HTTP probes on the ops port: liveness /healthz, readiness /readyz, a startup allowance. */}}
{{- define "chat.probes" -}}
# The ops port opens once the stores are connected: startup waits up to 5 minutes for it.
startupProbe:
  httpGet:
    path: /healthz
    port: ops
  periodSeconds: 5
  failureThreshold: 60
livenessProbe:
  httpGet:
    path: /healthz
    port: ops
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: ops
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end }}

{{/* Checks of values that the schema cannot express. */}}
{{- define "chat.validate" -}}
{{- $v := .Values }}
{{- if gt (int $v.messageServer.replicas) (int $v.kafka.partitions) }}
{{- fail (printf "messageServer.replicas (%d) exceeds kafka.partitions (%d): the extra message servers would get no partition" (int $v.messageServer.replicas) (int $v.kafka.partitions)) }}
{{- end }}
{{- if gt (int $v.kafka.minInsyncReplicas) (int $v.kafka.replicationFactor) }}
{{- fail (printf "kafka.minInsyncReplicas (%d) exceeds kafka.replicationFactor (%d)" (int $v.kafka.minInsyncReplicas) (int $v.kafka.replicationFactor)) }}
{{- end }}
{{- if and $v.auth.jwtSecret (lt (len $v.auth.jwtSecret) 32) }}
{{- fail "auth.jwtSecret must be at least 32 bytes long" }}
{{- end }}
{{- if and $v.auth.internalToken (lt (len $v.auth.internalToken) 16) }}
{{- fail "auth.internalToken must be at least 16 bytes long" }}
{{- end }}
{{- if and $v.notifier.enabled $v.notifier.apns.enabled (or (not $v.notifier.apns.keyId) (not $v.notifier.apns.teamId)) }}
{{- fail "notifier.apns.keyId and notifier.apns.teamId are required (or notifier.apns.enabled=false)" }}
{{- end }}
{{- if and $v.media.enabled (lt (int64 $v.media.unsentAfterSecs) (int64 $v.media.pendingAfterSecs)) }}
{{- fail (printf "media.unsentAfterSecs (%d) must be at least media.pendingAfterSecs (%d): chat-media refuses to start otherwise" (int64 $v.media.unsentAfterSecs) (int64 $v.media.pendingAfterSecs)) }}
{{- end }}
{{- end }}
