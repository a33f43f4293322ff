// Package lint holds checks over the whole repository that belong to no
// one package, such as every package having a doc comment.
package lint
