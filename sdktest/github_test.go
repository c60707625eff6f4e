package sdktest

import (
	"context"
	"net/http"
	"net/url"

	"github.com/google/go-github/v84/github"

	"github.com/resilient-go/resilient/resilienttest"
)

// githubClient talks to u through rt. go-github has no retry layer of its
// own (it only refuses calls locally while a rate limit it saw lasts), so
// ours is the only one.
func githubClient(u string, rt http.RoundTripper) *github.Client {
	c := github.NewClient(&http.Client{Transport: rt})
	base, err := url.Parse(u + "/")
	if err != nil {
		panic(err)
	}
	c.BaseURL = base
	return c
}

func githubSDK() sdk {
	return sdk{
		name: "go-github",
		write: func(ctx context.Context, u string, rt http.RoundTripper) error {
			_, _, err := githubClient(u, rt).Issues.Create(ctx, "o", "r", &github.IssueRequest{Title: github.Ptr("flaky")})
			return err
		},
		read: func(ctx context.Context, u string, rt http.RoundTripper) error {
			_, _, err := githubClient(u, rt).Issues.Get(ctx, "o", "r", 1)
			return err
		},
		ok: []resilienttest.Fault{
			resilienttest.Header("Content-Type", "application/json"),
			resilienttest.OnMethod(http.MethodPost, resilienttest.Respond(http.StatusCreated, `{"number":1,"title":"flaky"}`)),
			resilienttest.Respond(http.StatusOK, `{"number":1,"title":"flaky"}`),
		},
	}
}
