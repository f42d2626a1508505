// KEDA (event-driven autoscaling) for the cluster of scripts/cluster.sh: its operator and metrics
// API server are built from this module's requirement (go build
// github.com/kedacore/keda/v2/cmd/operator and …/cmd/adapter). The replace directives are
// those of KEDA's own go.mod, which a requiring module must repeat.
module tombstone-pipeline/tools/keda

go 1.23.4

require github.com/kedacore/keda/v2 v2.16.1

replace (
	// pin k8s.io to v0.31.2 & sigs.k8s.io/controller-runtime to v0.19.1
	github.com/google/cel-go => github.com/google/cel-go v0.20.1
	github.com/prometheus/client_golang => github.com/prometheus/client_golang v1.19.1
	github.com/prometheus/client_model => github.com/prometheus/client_model v0.6.1
	github.com/prometheus/common => github.com/prometheus/common v0.55.0
	k8s.io/api => k8s.io/api v0.31.2
	k8s.io/apimachinery => k8s.io/apimachinery v0.31.2
	k8s.io/apiserver => k8s.io/apiserver v0.31.2
	k8s.io/client-go => k8s.io/client-go v0.31.2
	k8s.io/code-generator => k8s.io/code-generator v0.31.2
	k8s.io/component-base => k8s.io/component-base v0.31.2
	k8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-20240228011516-70dd3763d340
	k8s.io/metrics => k8s.io/metrics v0.31.2
)

replace (
	// we need a version with a proper license
	github.com/chzyer/logex => github.com/chzyer/logex v1.2.1

	// https://github.com/advisories/GHSA-29wx-vh33-7x7r
	github.com/golang-jwt/jwt/v4 => github.com/golang-jwt/jwt/v4 v4.5.1

	// we use an updated package to avoid other vulnerabilities on its deps (like github.com/dgrijalva/jwt-go)
	github.com/spf13/viper => github.com/spf13/viper v1.19.0

	// https://avd.aquasec.com/nvd/cve-2024-45337
	golang.org/x/crypto => golang.org/x/crypto v0.31.0

	// Needed for CVE-2024-45338 https://avd.aquasec.com/nvd/cve-2024-45338
	golang.org/x/net => golang.org/x/net v0.33.0

	// https://nvd.nist.gov/vuln/detail/CVE-2022-32149
	golang.org/x/text => golang.org/x/text v0.21.0

	// https://github.com/kedacore/keda/issues/5124
	google.golang.org/grpc => google.golang.org/grpc v1.67.1

	// Needed for CVE-2022-28948 https://www.cve.org/CVERecord?id=CVE-2022-28948
	gopkg.in/yaml.v3 => gopkg.in/yaml.v3 v3.0.1
)
