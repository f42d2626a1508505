{{/* Chart name, truncated to the DNS label limit. */}}
{{- define "tombstone-pipeline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped base name of every object. */}}
{{- define "tombstone-pipeline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: (dict "ctx" $ "component" "processor"), at most 52
     characters whatever the release name: a CronJob name may not be longer (its Jobs add a
     suffix), and a StatefulSet's controller-revision-hash label (name + "-" + 10 characters)
     must stay within 63. The base name is cut to leave room for the component. */}}
{{- define "tombstone-pipeline.componentName" -}}
{{- $room := sub 51 (len .component) | int -}}
{{- printf "%s-%s" (include "tombstone-pipeline.fullname" .ctx | trunc $room | trimSuffix "-") .component -}}
{{- end -}}

{{- define "tombstone-pipeline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "processor"). */}}
{{- define "tombstone-pipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tombstone-pipeline.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component: (dict "ctx" $ "component" "processor"). */}}
{{- define "tombstone-pipeline.labels" -}}
helm.sh/chart: {{ include "tombstone-pipeline.chart" .ctx }}
{{ include "tombstone-pipeline.selectorLabels" . }}
app.kubernetes.io/part-of: {{ include "tombstone-pipeline.name" .ctx }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Image reference: (dict "ctx" $ "image" .Values.jaeger.image), or for one of the pipeline's
     services (dict "ctx" $ "service" "processor"), whose unset fields come from `images`.
     global.imageRegistry wins over every image's registry; a digest replaces the tag. */}}
{{- define "tombstone-pipeline.imageRef" -}}
{{- $image := include "tombstone-pipeline.imageSettings" . | fromJson -}}
{{- $registry := coalesce .ctx.Values.global.imageRegistry $image.registry | default "" | trimSuffix "/" -}}
{{- $name := ternary (printf "%s/%s" $registry $image.repository) $image.repository (ne $registry "") -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $name $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $name (required "an image needs a tag or a digest" $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* An image's settings with the defaults filled in, as JSON (same argument as imageRef). */}}
{{- define "tombstone-pipeline.imageSettings" -}}
{{- $v := .ctx.Values -}}
{{- $image := deepCopy (default dict .image) -}}
{{- if .service -}}
{{- $image = deepCopy (index $v.images .service) -}}
{{- $_ := set $image "registry" (coalesce $image.registry $v.images.registry | default "") -}}
{{- $_ := set $image "tag" (coalesce $image.tag $v.images.tag .ctx.Chart.AppVersion) -}}
{{- $_ := set $image "pullPolicy" (coalesce $image.pullPolicy $v.images.pullPolicy | default "") -}}
{{- end -}}
{{- $_ := set $image "pullPolicy" (coalesce $image.pullPolicy $v.global.imagePullPolicy "IfNotPresent") -}}
{{- toJson $image -}}
{{- end -}}

{{/* The image and imagePullPolicy fields of a container (same argument as imageRef). */}}
{{- define "tombstone-pipeline.imageFields" -}}
image: {{ include "tombstone-pipeline.imageRef" . | quote }}
imagePullPolicy: {{ (include "tombstone-pipeline.imageSettings" . | fromJson).pullPolicy }}
{{- end -}}

{{/* Pod template metadata: (dict "ctx" $ "component" "processor" "values" .Values.processor
     "annotations" (dict …)). The component's podLabels and podAnnotations are added; the chart's
     own labels and annotations win on a clash (selectors must keep matching).
     A stateful workload (broker, Resonate server, PostgreSQL) adds "config" (what its pods run
     with): its pod labels leave out the chart and app versions, so a chart bump alone does not
     restart it, and a checksum of "config" restarts it when that changes. */}}
{{- define "tombstone-pipeline.podMetadata" -}}
{{- $labels := merge (include "tombstone-pipeline.labels" . | fromYaml) (deepCopy (default dict .values.podLabels)) -}}
{{- $annotations := deepCopy (default dict .annotations) -}}
{{- if hasKey . "config" -}}
{{- $labels = omit $labels "helm.sh/chart" "app.kubernetes.io/version" -}}
{{- $_ := set $annotations "checksum/config" (toJson .config | sha256sum) -}}
{{- end -}}
labels:
  {{- toYaml $labels | nindent 2 }}
{{- with merge $annotations (deepCopy (default dict .values.podAnnotations)) }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod spec fields every pod of the chart shares: (dict "ctx" $ "values" .Values.processor).
     The component's podSecurityContext is merged over the chart-wide one; its placement and
     priorityClassName are added. */}}
{{- define "tombstone-pipeline.podCommon" -}}
{{- $v := default dict .values -}}
enableServiceLinks: false
serviceAccountName: {{ include "tombstone-pipeline.serviceAccountName" .ctx }}
automountServiceAccountToken: false
securityContext:
  {{- merge (deepCopy (default dict $v.podSecurityContext)) (deepCopy .ctx.Values.podSecurityContext) | toYaml | nindent 2 }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- range $field := list "nodeSelector" "tolerations" "affinity" "topologySpreadConstraints" }}
{{- with index $v $field }}
{{ $field }}:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A container's securityContext: (dict "ctx" $ "values" .Values.processor), the component's
     containerSecurityContext merged over the chart-wide one. */}}
{{- define "tombstone-pipeline.containerSecurityContext" -}}
{{- merge (deepCopy (default dict .values.containerSecurityContext)) (deepCopy .ctx.Values.containerSecurityContext) | toYaml -}}
{{- end -}}

{{- define "tombstone-pipeline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tombstone-pipeline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* ---- addresses ------------------------------------------------------------------------ */}}

{{- define "tombstone-pipeline.redpandaName" -}}
{{- include "tombstone-pipeline.componentName" (dict "ctx" . "component" "redpanda") -}}
{{- end -}}

{{/* Redpanda's readiness: its admin API says "ready" in the body (an exec command, JSON list). */}}
{{- define "tombstone-pipeline.redpandaReady" -}}
{{- list "sh" "-c" "curl --silent --fail --max-time 4 http://127.0.0.1:9644/v1/status/ready | grep -q '\"ready\"'" | toJson -}}
{{- end -}}

{{/* Every broker's RPC address, comma-separated (the seeds of a multi-broker Redpanda). */}}
{{- define "tombstone-pipeline.redpandaSeeds" -}}
{{- $name := include "tombstone-pipeline.redpandaName" . -}}
{{- $seeds := list -}}
{{- range $i := until (int .Values.redpanda.replicas) -}}
{{- $seeds = append $seeds (printf "%s-%d.%s.%s.svc:33145" $name $i $name $.Release.Namespace) -}}
{{- end -}}
{{- join "," $seeds -}}
{{- end -}}

{{/* topics.replicationFactor, or its default: 3 on the chart's Redpanda of 3+ brokers, else 1. */}}
{{- define "tombstone-pipeline.replicationFactor" -}}
{{- $t := .Values.topics -}}
{{- if not (kindIs "invalid" $t.replicationFactor) -}}
{{- int $t.replicationFactor -}}
{{- else if and .Values.redpanda.enabled (ge (int .Values.redpanda.replicas) 3) -}}
3
{{- else -}}
1
{{- end -}}
{{- end -}}

{{/* topics.minInsyncReplicas, or its default: replicationFactor - 1 from 3 replicas up; empty =
     the broker's default. */}}
{{- define "tombstone-pipeline.minInsyncReplicas" -}}
{{- $t := .Values.topics -}}
{{- $rf := int (include "tombstone-pipeline.replicationFactor" .) -}}
{{- if not (kindIs "invalid" $t.minInsyncReplicas) -}}
{{- int $t.minInsyncReplicas -}}
{{- else if ge $rf 3 -}}
{{- sub $rf 1 -}}
{{- end -}}
{{- end -}}

{{- define "tombstone-pipeline.bootstrapServers" -}}
{{- if .Values.kafka.bootstrapServers -}}
{{- .Values.kafka.bootstrapServers -}}
{{- else if .Values.redpanda.enabled -}}
{{- printf "%s.%s.svc:%d" (include "tombstone-pipeline.redpandaName" .) .Release.Namespace (int .Values.redpanda.kafkaPort) -}}
{{- else -}}
{{- fail "kafka.bootstrapServers is required when redpanda.enabled=false" -}}
{{- end -}}
{{- end -}}

{{- define "tombstone-pipeline.resonateName" -}}
{{- include "tombstone-pipeline.componentName" (dict "ctx" . "component" "resonate") -}}
{{- end -}}

{{- define "tombstone-pipeline.resonateUrl" -}}
{{- if .Values.resonate.enabled -}}
{{- printf "http://%s.%s.svc:%d" (include "tombstone-pipeline.resonateName" .) .Release.Namespace (int .Values.resonate.port) -}}
{{- else if .Values.resonate.url -}}
{{- .Values.resonate.url -}}
{{- else if not .Values.resonate.localMode -}}
{{- fail "resonate.url is required when resonate.enabled=false (or resonate.localMode=true for a development cluster without a server)" -}}
{{- end -}}
{{- end -}}

{{- define "tombstone-pipeline.postgresqlName" -}}
{{- include "tombstone-pipeline.componentName" (dict "ctx" . "component" "postgresql") -}}
{{- end -}}

{{- define "tombstone-pipeline.postgresqlSecretName" -}}
{{- default (include "tombstone-pipeline.postgresqlName" .) .Values.postgresql.auth.existingSecret -}}
{{- end -}}

{{/* The Resonate server's database when it is built from parts (no existingSecret): host, port,
     database, user, password Secret and key, sslmode; the chart's PostgreSQL when host is empty. */}}
{{- define "tombstone-pipeline.postgresTarget" -}}
{{- $pg := .Values.resonate.storage.postgres -}}
{{- if $pg.host -}}
{{- dict "host" $pg.host "port" (int $pg.port) "database" $pg.database "user" $pg.user "secret" (required "resonate.storage.postgres.passwordSecret is required with resonate.storage.postgres.host" $pg.passwordSecret) "key" $pg.passwordKey "sslMode" $pg.sslMode | toJson -}}
{{- else -}}
{{- $auth := .Values.postgresql.auth -}}
{{- dict "host" (printf "%s.%s.svc" (include "tombstone-pipeline.postgresqlName" .) .Release.Namespace) "port" (int .Values.postgresql.port) "database" $auth.database "user" $auth.username "secret" (include "tombstone-pipeline.postgresqlSecretName" .) "key" $auth.passwordKey "sslMode" "disable" | toJson -}}
{{- end -}}
{{- end -}}

{{- define "tombstone-pipeline.jaegerName" -}}
{{- include "tombstone-pipeline.componentName" (dict "ctx" . "component" "jaeger") -}}
{{- end -}}

{{- define "tombstone-pipeline.otelEndpoint" -}}
{{- if .Values.otel.endpoint -}}
{{- .Values.otel.endpoint -}}
{{- else if .Values.jaeger.enabled -}}
{{- printf "http://%s.%s.svc:4318" (include "tombstone-pipeline.jaegerName" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "tombstone-pipeline.saslSecretName" -}}
{{- default (include "tombstone-pipeline.componentName" (dict "ctx" . "component" "kafka-sasl")) .Values.kafka.sasl.existingSecret -}}
{{- end -}}

{{- define "tombstone-pipeline.saslEnabled" -}}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol }}true{{ end -}}
{{- end -}}

{{/* Environment every pipeline workload gets: (dict "ctx" $ "service" "processor"). */}}
{{- define "tombstone-pipeline.pipelineEnv" -}}
{{- $v := .ctx.Values -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ include "tombstone-pipeline.bootstrapServers" .ctx | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ $v.kafka.securityProtocol | quote }}
{{- if include "tombstone-pipeline.saslEnabled" .ctx }}
- name: KAFKA_SASL_MECHANISM
  value: {{ required "kafka.sasl.mechanism is required with SASL" $v.kafka.sasl.mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  value: {{ required "kafka.sasl.username is required with SASL" $v.kafka.sasl.username | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "tombstone-pipeline.saslSecretName" .ctx }}
      key: {{ $v.kafka.sasl.passwordKey }}
{{- end }}
{{- include "tombstone-pipeline.kafkaTlsEnv" .ctx }}
- name: TOPIC_TOMBSTONES
  value: {{ $v.topics.tombstones | quote }}
- name: TOPIC_PROCESSED
  value: {{ $v.topics.processed | quote }}
- name: TOPIC_DLQ
  value: {{ $v.topics.dlq | quote }}
- name: LOG_LEVEL
  value: {{ $v.log.level | quote }}
- name: LOG_FORMAT
  value: {{ $v.log.format | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OTEL_SERVICE_NAME
  value: {{ .service | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "service.namespace=%s,k8s.namespace.name=%s,k8s.pod.name=$(POD_NAME)" (include "tombstone-pipeline.fullname" .ctx) .ctx.Release.Namespace | quote }}
{{- with include "tombstone-pipeline.otelEndpoint" .ctx }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
{{- else }}
- name: OTEL_TRACES_EXPORTER
  value: none
{{- end }}
{{- end -}}

{{/* Environment of setup-topics: (dict "ctx" $ "service" "topic-init"). */}}
{{- define "tombstone-pipeline.topicInitEnv" -}}
{{ include "tombstone-pipeline.pipelineEnv" . }}
- name: TOPIC_PARTITIONS
  value: {{ .ctx.Values.topics.partitions | quote }}
- name: TOPIC_REPLICATION_FACTOR
  value: {{ include "tombstone-pipeline.replicationFactor" .ctx | quote }}
{{- with include "tombstone-pipeline.minInsyncReplicas" .ctx }}
- name: TOPIC_MIN_INSYNC_REPLICAS
  value: {{ . | quote }}
{{- end }}
- name: BROKER_WAIT_SECONDS
  value: {{ .ctx.Values.topicInit.brokerWaitSeconds | quote }}
{{- with .ctx.Values.topicInit.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The volumes and mounts of a read-only root filesystem: a writable /tmp. */}}
{{- define "tombstone-pipeline.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}
{{- define "tombstone-pipeline.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* The volumes every pod of a component gets after its own: /tmp, the Kafka TLS files for a
     Kafka client ("kafkaClient" true), then the component's extraVolumes.
     (dict "ctx" $ "values" .Values.processor "kafkaClient" true) */}}
{{- define "tombstone-pipeline.podVolumes" -}}
{{ include "tombstone-pipeline.tmpVolume" .ctx }}
{{- if .kafkaClient }}
{{- include "tombstone-pipeline.kafkaTlsVolumes" (dict "ctx" .ctx "part" "volumes") }}
{{- end }}
{{- with .values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The mounts of a component's main container after its own (same argument as podVolumes). */}}
{{- define "tombstone-pipeline.containerMounts" -}}
{{ include "tombstone-pipeline.tmpMount" .ctx }}
{{- if .kafkaClient }}
{{- include "tombstone-pipeline.kafkaTlsVolumes" (dict "ctx" .ctx "part" "mounts") }}
{{- end }}
{{- with .values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* A container's envFrom from the component's extraEnvFrom, nothing when it is empty:
     (dict "values" .Values.processor "indent" 10), the container's field indentation. */}}
{{- define "tombstone-pipeline.envFrom" -}}
{{- if .values.extraEnvFrom }}
{{- dict "envFrom" .values.extraEnvFrom | toYaml | nindent (int .indent) }}
{{- end }}
{{- end -}}

{{/* ---- Kafka TLS ---------------------------------------------------------------------------- */}}

{{/* Where the TLS files are mounted in every Kafka client (fixed: the env points at them). */}}
{{- define "tombstone-pipeline.kafkaTlsPaths" -}}
{{- dict "ca" "/etc/kafka-tls/ca/ca.crt" "cert" "/etc/kafka-tls/client/tls.crt" "key" "/etc/kafka-tls/client/tls.key" | toJson -}}
{{- end -}}

{{/* The Kafka TLS settings, as JSON: enabled (securityProtocol SSL or SASL_SSL); ca (a CA bundle
     is configured) with caSecret/caKey; client (a client certificate is configured) with
     clientSecret/certKey/keyKey, and keyPasswordKey when its key has a password. A Secret the
     chart makes from values (pem, cert/key) has fixed keys. */}}
{{- define "tombstone-pipeline.kafkaTls" -}}
{{- $tls := .Values.kafka.tls -}}
{{- $ca := $tls.ca -}}
{{- $cc := $tls.clientCert -}}
{{- $r := dict "enabled" (hasSuffix "SSL" .Values.kafka.securityProtocol) "ca" false "client" false "endpointIdentification" $tls.endpointIdentification -}}
{{- if $ca.existingSecret -}}
{{- $_ := set $r "ca" true -}}{{- $_ := set $r "caSecret" $ca.existingSecret -}}{{- $_ := set $r "caKey" $ca.key -}}
{{- else if $ca.pem -}}
{{- $_ := set $r "ca" true -}}{{- $_ := set $r "caSecret" (include "tombstone-pipeline.componentName" (dict "ctx" . "component" "kafka-tls-ca")) -}}{{- $_ := set $r "caKey" "ca.crt" -}}
{{- end -}}
{{- if $cc.existingSecret -}}
{{- $_ := set $r "client" true -}}{{- $_ := set $r "clientSecret" $cc.existingSecret -}}
{{- $_ := set $r "certKey" $cc.certKey -}}{{- $_ := set $r "keyKey" $cc.keyKey -}}
{{- with $cc.keyPasswordKey }}{{ $_ := set $r "keyPasswordKey" . }}{{ end -}}
{{- else if or $cc.cert $cc.key -}}
{{- $_ := set $r "client" true -}}{{- $_ := set $r "clientSecret" (include "tombstone-pipeline.componentName" (dict "ctx" . "component" "kafka-tls-client")) -}}
{{- $_ := set $r "certKey" "tls.crt" -}}{{- $_ := set $r "keyKey" "tls.key" -}}
{{- if $cc.keyPassword }}{{ $_ := set $r "keyPasswordKey" "key-password" }}{{ end -}}
{{- end -}}
{{- toJson $r -}}
{{- end -}}

{{/* KAFKA_SSL_* of every Kafka client (nothing without TLS): paths of the mounted files, the key's
     password from its Secret, hostname verification. Included by pipelineEnv. */}}
{{- define "tombstone-pipeline.kafkaTlsEnv" -}}
{{- $t := include "tombstone-pipeline.kafkaTls" . | fromJson -}}
{{- $paths := include "tombstone-pipeline.kafkaTlsPaths" . | fromJson -}}
{{- if $t.enabled }}
{{- if $t.ca }}
- name: KAFKA_SSL_CA_LOCATION
  value: {{ $paths.ca | quote }}
{{- end }}
{{- if $t.client }}
- name: KAFKA_SSL_CERTIFICATE_LOCATION
  value: {{ $paths.cert | quote }}
- name: KAFKA_SSL_KEY_LOCATION
  value: {{ $paths.key | quote }}
{{- with $t.keyPasswordKey }}
- name: KAFKA_SSL_KEY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $t.clientSecret }}
      key: {{ . }}
{{- end }}
{{- end }}
- name: KAFKA_SSL_ENDPOINT_IDENTIFICATION
  value: {{ $t.endpointIdentification | quote }}
{{- end }}
{{- end -}}

{{/* The CA bundle and client certificate of a Kafka client, read-only at the fixed paths:
     (dict "ctx" $ "part" "volumes") or (… "part" "mounts"). Each file is projected under its
     fixed name, whatever its key in the Secret. Nothing without TLS. */}}
{{- define "tombstone-pipeline.kafkaTlsVolumes" -}}
{{- $t := include "tombstone-pipeline.kafkaTls" .ctx | fromJson -}}
{{- if $t.enabled }}
{{- if eq .part "volumes" }}
{{- if $t.ca }}
- name: kafka-tls-ca
  secret:
    secretName: {{ $t.caSecret }}
    defaultMode: 0444
    items:
      - key: {{ $t.caKey }}
        path: ca.crt
{{- end }}
{{- if $t.client }}
- name: kafka-tls-client
  secret:
    secretName: {{ $t.clientSecret }}
    defaultMode: 0440
    items:
      - key: {{ $t.certKey }}
        path: tls.crt
      - key: {{ $t.keyKey }}
        path: tls.key
{{- end }}
{{- else }}
{{- if $t.ca }}
- name: kafka-tls-ca
  mountPath: /etc/kafka-tls/ca
  readOnly: true
{{- end }}
{{- if $t.client }}
- name: kafka-tls-client
  mountPath: /etc/kafka-tls/client
  readOnly: true
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Checks that span several values. */}}
{{- define "tombstone-pipeline.validate" -}}
{{- $chartBroker := and .Values.redpanda.enabled (not .Values.kafka.bootstrapServers) -}}
{{- if and (include "tombstone-pipeline.saslEnabled" .) $chartBroker -}}
{{- fail "kafka SASL settings apply to an external broker: set kafka.bootstrapServers (and redpanda.enabled=false); the chart's Redpanda has no SASL listener" -}}
{{- end -}}
{{- $tls := include "tombstone-pipeline.kafkaTls" . | fromJson -}}
{{- if and $tls.enabled $chartBroker -}}
{{- fail (printf "kafka.securityProtocol=%s (TLS) applies to an external broker: set kafka.bootstrapServers (and redpanda.enabled=false); the chart's Redpanda has no TLS listener" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if and (or $tls.ca $tls.client) (not $tls.enabled) -}}
{{- fail (printf "kafka.tls.ca / kafka.tls.clientCert are set but kafka.securityProtocol=%s does not use TLS (use SSL or SASL_SSL)" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- $cc := .Values.kafka.tls.clientCert -}}
{{- if and (not $cc.existingSecret) (or $cc.cert $cc.key) (not (and $cc.cert $cc.key)) -}}
{{- fail "kafka.tls.clientCert needs both cert and key (or existingSecret)" -}}
{{- end -}}
{{- if and $tls.enabled $tls.keyPasswordKey .Values.console.enabled -}}
{{- fail "the Redpanda Console cannot read a password-protected client key (kafka.tls.clientCert keyPassword / keyPasswordKey): give the clients an unencrypted key, or set console.enabled=false" -}}
{{- end -}}
{{- if and .Values.redpanda.enabled (not .Values.redpanda.developerMode) -}}
{{- $memory := .Values.redpanda.memory -}}
{{- $n := regexReplaceAll "[KMG]$" $memory "" | int64 -}}
{{- $unit := regexReplaceAll "^[0-9]+" $memory "" -}}
{{- $mib := ternary (mul $n 1024) (ternary $n (div $n 1024) (eq $unit "M")) (eq $unit "G") -}}
{{- if lt (div $mib (int .Values.redpanda.smp)) 1024 -}}
{{- fail (printf "redpanda.memory=%s over redpanda.smp=%d core(s) is below the 1G per core Redpanda requires outside developer mode: raise redpanda.memory (and the container's memory) or set redpanda.developerMode=true (development only)" $memory (int .Values.redpanda.smp)) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.processor.autoscaling.enabled .Values.processor.keda.enabled -}}
{{- fail "processor.autoscaling (HPA) and processor.keda (ScaledObject) both scale the processor: turn one off" -}}
{{- end -}}
{{- $storage := .Values.resonate.storage -}}
{{- if and (eq $storage.type "postgres") (not $storage.postgres.existingSecret) (not $storage.postgres.host) (not .Values.postgresql.enabled) -}}
{{- fail "resonate.storage.type=postgres needs a database: resonate.storage.postgres.existingSecret (the URL), resonate.storage.postgres.host (+ passwordSecret), or postgresql.enabled=true" -}}
{{- end -}}
{{- if and .Values.postgresql.enabled (or (ne $storage.type "postgres") $storage.postgres.existingSecret $storage.postgres.host) -}}
{{- fail "postgresql.enabled runs a database for the Resonate server: set resonate.storage.type=postgres and leave resonate.storage.postgres.existingSecret and host empty" -}}
{{- end -}}
{{- $rf := int (include "tombstone-pipeline.replicationFactor" .) -}}
{{- if and .Values.redpanda.enabled (not .Values.kafka.bootstrapServers) (gt $rf (int .Values.redpanda.replicas)) -}}
{{- fail (printf "topics.replicationFactor (%d) exceeds redpanda.replicas (%d): the broker would refuse to create the topics" $rf (int .Values.redpanda.replicas)) -}}
{{- end -}}
{{- with include "tombstone-pipeline.minInsyncReplicas" . -}}
{{- if gt (int .) $rf -}}
{{- fail (printf "topics.minInsyncReplicas (%s) exceeds the replication factor (%d): no write could be acknowledged" . $rf) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.resonate.auth.enabled (not .Values.resonate.auth.existingSecret) -}}
{{- fail "resonate.auth.enabled needs resonate.auth.existingSecret (keys: public key for the server, token for the processor)" -}}
{{- end -}}
{{- end -}}


{{/* The Resonate server's database as environment: POSTGRES_URL (and POSTGRES_WHERE, the URL
     without credentials, for messages). (dict "ctx" $ "withPassword" true): the URL the server
     connects with; false: the same URL without the password (enough for pg_isready), except
     that a URL from existingSecret is used as it is. */}}
{{- define "tombstone-pipeline.resonatePostgresEnv" -}}
{{- $pg := .ctx.Values.resonate.storage.postgres -}}
{{- if $pg.existingSecret -}}
- name: POSTGRES_URL
  valueFrom:
    secretKeyRef:
      name: {{ $pg.existingSecret }}
      key: {{ $pg.urlKey }}
- name: POSTGRES_WHERE
  value: {{ printf "the URL in Secret %s, key %s" $pg.existingSecret $pg.urlKey | quote }}
{{- else -}}
{{- $t := include "tombstone-pipeline.postgresTarget" .ctx | fromJson -}}
{{- $where := printf "%s:%d/%s" $t.host (int $t.port) $t.database -}}
{{- if .withPassword }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $t.secret }}
      key: {{ $t.key }}
{{- end }}
- name: POSTGRES_URL
  value: {{ printf "postgres://%s%s@%s?sslmode=%s" $t.user (ternary ":$(POSTGRES_PASSWORD)" "" .withPassword) $where $t.sslMode | quote }}
- name: POSTGRES_WHERE
  value: {{ $where | quote }}
{{- end -}}
{{- end -}}
