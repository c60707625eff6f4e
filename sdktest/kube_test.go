package sdktest

import (
	"context"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/resilient-go/resilient/resilienttest"
)

// kubeClient talks to u through rt with the typed core/v1 client (lighter
// to build than the whole clientset). client-go's own retry layer cannot be
// switched off from a typed client: it re-sends up to 10 times, but only a
// 429 or 5xx that carries Retry-After, or a GET that died on a reset or
// EOF. The client-side rate limiter (QPS 5, burst 10) is off here so that
// timings depend on the server alone.
func kubeClient(u string, rt http.RoundTripper) typedcorev1.CoreV1Interface {
	c, err := typedcorev1.NewForConfig(&rest.Config{Host: u, Transport: rt, QPS: -1})
	if err != nil {
		panic(err)
	}
	return c
}

// kubeClientLimited keeps client-go's default rate limiter.
func kubeClientLimited(u string, rt http.RoundTripper) typedcorev1.CoreV1Interface {
	c, err := typedcorev1.NewForConfig(&rest.Config{Host: u, Transport: rt})
	if err != nil {
		panic(err)
	}
	return c
}

const kubeConfigMap = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-x1","namespace":"ns"},"data":{"k":"v"}}`

func kubeCreate(ctx context.Context, c typedcorev1.CoreV1Interface) error {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "cm-"},
		Data:       map[string]string{"k": "v"},
	}
	_, err := c.ConfigMaps("ns").Create(ctx, cm, metav1.CreateOptions{})
	return err
}

func kubeSDK() sdk {
	return sdk{
		name: "client-go",
		write: func(ctx context.Context, u string, rt http.RoundTripper) error {
			return kubeCreate(ctx, kubeClient(u, rt))
		},
		read: func(ctx context.Context, u string, rt http.RoundTripper) error {
			_, err := kubeClient(u, rt).ConfigMaps("ns").Get(ctx, "cm-x1", metav1.GetOptions{})
			return err
		},
		ok: []resilienttest.Fault{
			resilienttest.Header("Content-Type", "application/json"),
			resilienttest.OnMethod(http.MethodPost, resilienttest.Respond(http.StatusCreated, kubeConfigMap)),
			resilienttest.Respond(http.StatusOK, kubeConfigMap),
		},
	}
}
