package sdktest

import (
	"context"
	"net/http"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/resilient-go/resilient/resilienttest"
)

// openaiClient talks to u through rt with openai-go's retries off
// (WithMaxRetries(0)). openai-go sets no idempotency key: the pipeline's
// is the one re-sent.
func openaiClient(u string, rt http.RoundTripper) openai.Client {
	return openai.NewClient(
		option.WithBaseURL(u+"/"),
		option.WithAPIKey("sk-test"),
		option.WithHTTPClient(&http.Client{Transport: rt}),
		option.WithMaxRetries(0),
	)
}

func openaiSDK() sdk {
	return sdk{
		name: "openai-go",
		write: func(ctx context.Context, u string, rt http.RoundTripper) error {
			c := openaiClient(u, rt)
			_, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{
				Model: openai.EmbeddingModelTextEmbedding3Small,
				Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hello")},
			})
			return err
		},
		read: func(ctx context.Context, u string, rt http.RoundTripper) error {
			c := openaiClient(u, rt)
			_, err := c.Models.Get(ctx, "m1")
			return err
		},
		ok: []resilienttest.Fault{
			resilienttest.Header("Content-Type", "application/json"),
			resilienttest.OnMethod(http.MethodPost, resilienttest.Respond(http.StatusOK,
				`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}`)),
			resilienttest.Respond(http.StatusOK, `{"id":"m1","object":"model","created":0,"owned_by":"o"}`),
		},
	}
}
